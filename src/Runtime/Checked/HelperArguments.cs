using BpfJit.Frontend;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime.Checked;

/// <summary>
/// The checking engines' guard at a helper call (the interpreter always, the JIT in checked mode): every
/// argument whose type in the helper's prototype is a pointer must point where the prototype says — a live map
/// for a map argument, <c>key_size</c> or <c>value_size</c> bytes of some region for a key or value, the given
/// number of bytes for memory with a size, a context or socket block at its start. The kernel's verifier
/// proves this before a program runs; an unverified program (or a verifier bug) would otherwise hand a helper
/// an address it follows into anything. A failed check raises <see cref="BpfFaultException"/> before the
/// helper runs. Arguments the kernel itself reads without trusting them (bpf_trace_printk's values behind
/// <c>%s</c>, <c>%pI4</c>) are the helper's to check: they are not in the prototype.
/// </summary>
public static class HelperArguments
{
    /// <summary>
    /// Throws <see cref="BpfFaultException"/> unless every pointer argument of <paramref name="helper"/>'s call at
    /// slot <paramref name="index"/> is valid; returns the map argument, if any. The caller's stack block,
    /// [<paramref name="stackStart"/>, +<paramref name="stackLength"/>), is tested first (where keys mostly are),
    /// then the registry.
    /// </summary>
    /// <remarks>
    /// A context argument must be <paramref name="ctx"/>, the r1 the run was started with (whatever its caller
    /// passed: a test may pass any number), or a registered context block (a callback's caller's context).
    /// </remarks>
    public static BpfMap? Check(Helper helper, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ulong ctx,
        ulong stackStart, int stackLength, Instruction[]? program, int index) =>
        Check(helper, r1, r2, r3, r4, r5, ctx, stackStart, stackLength, program, index, null, 0);

    /// <summary>
    /// <see cref="Check(Helper, ulong, ulong, ulong, ulong, ulong, ulong, ulong, int, Instruction[], int)"/> with the map
    /// this call site passed last time (<paramref name="lastMap"/>, or null): when the map argument is still that live
    /// map's handle, the registry is not searched; and with <paramref name="knownSocket"/>, a socket view a helper
    /// returned to this run (0: none), which a socket argument may be without a registry lookup.
    /// </summary>
    public static BpfMap? Check(Helper helper, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ulong ctx,
        ulong stackStart, int stackLength, Instruction[]? program, int index, BpfMap? lastMap, ulong knownSocket)
    {
        var probe = new StackProbe(stackStart, stackLength);
        return Check(ref probe, helper, r1, r2, r3, r4, r5, ctx, program, index, lastMap, knownSocket);
    }

    /// <summary>Memory a caller already knows the program may touch (its stack, regions it met): tested before the registry.</summary>
    internal interface IRegionProbe
    {
        /// <summary>True when [<paramref name="address"/>, +<paramref name="size"/>) is known to be touchable.</summary>
        bool Holds(ulong address, int size);
    }

    struct StackProbe(ulong start, int length) : IRegionProbe
    {
        public readonly bool Holds(ulong address, int size) => size <= length && address - start <= (ulong)(length - size);
    }

    /// <summary>The check, with <paramref name="probe"/> asked before the registry (generic: a struct probe inlines).</summary>
    internal static BpfMap? Check<TProbe>(ref TProbe probe, Helper helper, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ulong ctx,
        Instruction[]? program, int index, BpfMap? lastMap, ulong knownSocket) where TProbe : struct, IRegionProbe
    {
        ArgumentNullException.ThrowIfNull(helper);
        var args = helper.Proto.Args;
        if (args.Length == 0 || ReferenceEquals(helper.Proto, HelperProto.Unknown)) return null;
        BpfMap? map = null;
        for (int i = 0; i < args.Length; i++)
        {
            ulong value = Arg(i, r1, r2, r3, r4, r5);
            ulong size = 0;
            string? problem = null;
            switch (args[i])
            {
                case ArgType.ConstMapPtr:
                    if (lastMap != null && lastMap.Handle == value && !lastMap.IsDisposed) map = lastMap;
                    else if (!BpfMap.TryFromHandle(value, out map)) problem = "is not a live map";
                    break;
                case ArgType.PtrToMapKey when map != null:
                    size = (ulong)map.KeySize;
                    break;
                case ArgType.PtrToMapValue or ArgType.PtrToUninitMapValue when map != null:
                    size = (ulong)map.ValueSize;
                    break;
                case ArgType.PtrToMem or ArgType.PtrToUninitMem or ArgType.PtrToMemOrNull or ArgType.PtrToWritableMemOrNull:
                    if (value == 0 && args[i] is ArgType.PtrToMemOrNull or ArgType.PtrToWritableMemOrNull) break;
                    // As many bytes as the size argument after it says (one byte when none follows).
                    bool sized = i + 1 < args.Length && args[i + 1] is ArgType.ConstSize or ArgType.ConstSizeOrZero;
                    size = sized ? Arg(i + 1, r1, r2, r3, r4, r5) : 1;
                    if (sized && size == 0) break;
                    if (size > int.MaxValue) problem = $"is followed by a size of {size} bytes";
                    break;
                case ArgType.PtrToCtx:
                    if (value != ctx && !MemoryRegions.IsBlockStart(value, MemoryRegionKind.Context)) problem = "is not the program's context";
                    break;
                case ArgType.PtrToSocket or ArgType.PtrToSocketOrNull:
                    if (value == 0 && args[i] == ArgType.PtrToSocketOrNull) break;
                    // A known socket of 0 means none: NULL is no socket (the kernel's verifier refuses it here).
                    if (value == 0 || (value != knownSocket && !MemoryRegions.IsBlockStart(value, MemoryRegionKind.Socket))) problem = "is not a socket";
                    break;
                case ArgType.PtrToSpinLock:
                    size = BpfSpinLock.Size;
                    break;
                case ArgType.PtrToAlignedLong:
                    size = sizeof(long);
                    break;
                case ArgType.PtrToUninitLocalDynptr or ArgType.PtrToUninitRingbufDynptr:
                    size = Dynptr.Bytes;
                    break;
                case ArgType.PtrToDynptr or ArgType.PtrToRingbufDynptrRelease:
                    // The dynptr, then the data it describes: a forged dynptr must not lead the helper elsewhere.
                    size = Dynptr.Bytes;
                    if (!probe.Holds(value, Dynptr.Bytes) && !MemoryRegions.Contains(value, Dynptr.Bytes)) break;
                    problem = DynptrDataProblem(ref probe, value);
                    break;
                case ArgType.PtrToStackOrNull or ArgType.PtrToRingbufMem or ArgType.PtrToConstStr:
                    if (value == 0 && args[i] == ArgType.PtrToStackOrNull) break;
                    size = 1;
                    break;
            }
            if (problem == null && size > 0 && !probe.Holds(value, (int)size) && !MemoryRegions.Contains(value, (int)size))
                problem = $"does not point to {size} byte(s) the program may touch";
            if (problem == null) continue;
            string text = BpfFaultException.Describe(program, index);
            throw new BpfFaultException(index, text, "helper argument", value,
                $"instruction {index} ({text}): {helper.Name}: argument r{i + 1} = 0x{value:x} {problem}");
        }
        return map;
    }

    /// <summary>Why the data of the dynptr at <paramref name="address"/> is not the program's to touch, or null (a NULL dynptr has none).</summary>
    static unsafe string? DynptrDataProblem<TProbe>(ref TProbe probe, ulong address) where TProbe : struct, IRegionProbe
    {
        var d = (ulong*)address;
        if (Dynptr.IsNull(d)) return null;
        ulong data = (ulong)Dynptr.Data(d);
        int length = (int)Dynptr.Size(d);
        if (length == 0 || probe.Holds(data, length) || MemoryRegions.Contains(data, length)) return null;
        return $"is a dynptr whose data [0x{data:x}, +{length}) is not memory the program may touch";
    }

    // r1..r5 by index (a switch, not a span over a copy of them: this runs before every helper call of the interpreter)
    static ulong Arg(int i, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => i switch { 0 => r1, 1 => r2, 2 => r3, 3 => r4, _ => r5 };

    /// <summary>True when the helper ends the program's hold on memory it was given (ring-buffer submit and discard).</summary>
    public static bool ReleasesMemory(Helper helper)
    {
        ArgumentNullException.ThrowIfNull(helper);
        return Array.IndexOf(helper.Proto.Args, ArgType.PtrToRingbufMem) >= 0 || Array.IndexOf(helper.Proto.Args, ArgType.PtrToRingbufDynptrRelease) >= 0;
    }

    /// <summary>
    /// The bytes a helper's non-NULL result <paramref name="r0"/> lets the program touch, as the verifier types it:
    /// a map value (a socket view for SOCKMAP and SOCKHASH), a reserved ring-buffer record of the requested size;
    /// 0 when the result is no pointer. <paramref name="map"/> is what <c>Check</c> returned.
    /// </summary>
    public static int ResultBytes(Helper helper, BpfMap? map, ulong r0, ulong r2)
    {
        ArgumentNullException.ThrowIfNull(helper);
        if (r0 == 0 || map == null) return 0;
        return helper.Proto.Ret switch
        {
            RetType.PtrToMapValueOrNull when map.Type is MapType.SockMap or MapType.SockHash => Sockets.BpfSockLayout.ViewSize,
            RetType.PtrToMapValueOrNull => map.ValueSize,
            RetType.PtrToRingbufMemOrNull when r2 is > 0 and <= int.MaxValue => (int)r2,
            _ => 0,
        };
    }
}
