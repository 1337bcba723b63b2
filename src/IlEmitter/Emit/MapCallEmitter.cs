using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// <c>bpf_map_lookup_elem</c> whose map the verifier pinned (<see cref="SlotFacts.Map"/>), specialised
/// by map type (<see cref="ProgramShape.MapCalls"/>). ARRAY and PERCPU_ARRAY are inlined as the
/// kernel's map_gen_lookup does: a bounds check on the u32 key and address arithmetic on constants
/// (the value area never moves). HASH, LPM_TRIE, SOCKMAP and SOCKHASH call <see cref="JitMapCalls"/>
/// on the map held in a field of the closure.
/// </summary>
internal static class MapCallEmitter
{
    /// <summary>The generic helper a specialised call replaces.</summary>
    public static readonly MethodInfo GenericLookup = typeof(KernelHelpers).GetMethod(nameof(KernelHelpers.MapLookupElem))!;

    static readonly MethodInfo s_cpuCurrent = typeof(Cpu).GetMethod(nameof(Cpu.Current))!;
    static readonly MethodInfo s_as = typeof(Unsafe).GetMethods().Single(m => m.Name == nameof(Unsafe.As) && m.GetGenericArguments().Length == 1);

    public static void Emit(EmitContext c, int index)
    {
        var map = c.Facts![index].Map!;
        switch (c.Shape.MapCalls[index])
        {
            case MapCall.ArrayInline:
                {
                    var array = (ArrayMap)map;
                    c.Note($"ARRAY lookup inlined ({array.Name}: {array.MaxEntries} x {array.Stride} bytes)");
                    InlineArray(c, array.MaxEntries, array.Data, array.Stride, perCpuSlot: 0);
                    break;
                }
            case MapCall.PerCpuArrayInline:
                {
                    var array = (PerCpuArrayMap)map;
                    c.Note($"PERCPU_ARRAY lookup inlined ({array.Name}: {array.MaxEntries} x {array.ElementStride} bytes, this CPU's slot)");
                    InlineArray(c, array.MaxEntries, array.Data, array.ElementStride, array.SlotStride);
                    break;
                }
            default:
                {
                    var (type, lookup, kind) = map switch
                    {
                        HashMap => (typeof(HashMap), nameof(JitMapCalls.HashLookup), "HASH"),
                        LpmTrieMap => (typeof(LpmTrieMap), nameof(JitMapCalls.LpmTrieLookup), "LPM_TRIE"),
                        SockMap => (typeof(SockMap), nameof(JitMapCalls.SockMapLookup), "SOCKMAP"),
                        _ => (typeof(SockHash), nameof(JitMapCalls.SockHashLookup), "SOCKHASH"),
                    };
                    int field = c.Shape.ClosureSlot[index];
                    c.Note($"{kind} lookup: direct call on map {map.Name} (closure.Map{field})");
                    // r0 = JitMapCalls.XLookup(closure.MapN, r2)
                    c.Ldarg(0);
                    c.Ldfld(JitClosure.MapFields[field]);
                    c.Call(s_as.MakeGenericMethod(type));
                    c.LdReg(2);
                    c.Call(typeof(JitMapCalls).GetMethod(lookup)!);
                    c.StReg(0);
                    break;
                }
        }
    }

    /// <summary>
    /// key = *(u32 *)r2; r0 = key &lt; entries ? data + key * stride (+ Cpu.Current() * slot) : 0
    /// </summary>
    static void InlineArray(EmitContext c, int entries, ulong data, int stride, int perCpuSlot)
    {
        var miss = c.DefineLabel();
        var done = c.DefineLabel();
        // key = *(u32 *)r2
        c.LdReg(2);
        c.Op(OpCodes.Conv_U);
        c.Unaligned();
        c.Op(OpCodes.Ldind_U4);
        c.Stloc(c.Key);
        // if (key >= entries) goto miss
        c.Ldloc(c.Key);
        c.LdcI4(entries);
        c.Branch(OpCodes.Bge_Un, miss);
        // r0 = data + key * stride
        c.LdcI8((long)data);
        c.Ldloc(c.Key);
        c.Op(OpCodes.Conv_U8);
        c.LdcI8(stride);
        c.Op(OpCodes.Mul);
        c.Op(OpCodes.Add);
        if (perCpuSlot != 0)
        {
            // r0 += Cpu.Current() * slot
            c.Call(s_cpuCurrent);
            c.Op(OpCodes.Conv_I8);
            c.LdcI8(perCpuSlot);
            c.Op(OpCodes.Mul);
            c.Op(OpCodes.Add);
        }
        c.StReg(0);
        c.Br(done);
        // miss: r0 = 0
        c.MarkLabel(miss);
        c.LdcI8(0);
        c.StReg(0);
        c.MarkLabel(done);
    }
}
