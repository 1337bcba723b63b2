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

        /// <summary>True when [<paramref name="address"/>, +<paramref name="size"/>) is known to be in the program's stack (writable).</summary>
        bool HoldsStack(ulong address, int size);
    }

    struct StackProbe(ulong start, int length) : IRegionProbe
    {
        public readonly bool Holds(ulong address, int size) => size <= length && address - start <= (ulong)(length - size);

        public readonly bool HoldsStack(ulong address, int size) => Holds(address, size);
    }

    /// <summary>The check, with <paramref name="probe"/> asked before the registry (generic: a struct probe inlines).</summary>
    internal static BpfMap? Check<TProbe>(ref TProbe probe, Helper helper, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ulong ctx,
        Instruction[]? program, int index, BpfMap? lastMap, ulong knownSocket) where TProbe : struct, IRegionProbe
    {
        ArgumentNullException.ThrowIfNull(helper);
        var args = helper.Proto.Args;
        if (args.Length == 0 || ReferenceEquals(helper.Proto, HelperProto.Unknown)) return null;
        BpfMap? map = null, timerMap = null;
        for (int i = 0; i < args.Length; i++)
        {
            ulong value = Arg(i, r1, r2, r3, r4, r5);
            ulong size = 0;
            string? problem = null;
            // Memory the helper writes: the stack, a map value or a reserved record, never a context, socket view or packet
            // (the kernel's verifier refuses those for an uninit/written argument; a write there would corrupt what the host reads back).
            bool writes = false;
            switch (args[i])
            {
                case ArgType.DontCare or ArgType.Anything or ArgType.ConstSize or ArgType.ConstSizeOrZero or ArgType.ConstAllocSizeOrZero:
                    break;
                case ArgType.ConstMapPtr:
                    if (lastMap != null && lastMap.Handle == value && !lastMap.IsDisposed) map = lastMap;
                    else if (!BpfMap.TryFromHandle(value, out map)) problem = "is not a live map";
                    break;
                case ArgType.PtrToMapKey when map != null:
                    size = (ulong)map.KeySize;
                    break;
                case ArgType.PtrToMapValue when map != null:
                    size = (ulong)map.ValueSize;
                    break;
                case ArgType.PtrToMapValueOrNull when map != null:
                    if (value != 0) size = (ulong)map.ValueSize;
                    break;
                case ArgType.PtrToUninitMapValue when map != null:
                    size = (ulong)map.ValueSize;
                    writes = true;
                    break;
                case ArgType.PtrToMem or ArgType.PtrToUninitMem or ArgType.PtrToMemOrNull or ArgType.PtrToWritableMemOrNull:
                    if (value == 0 && args[i] is ArgType.PtrToMemOrNull or ArgType.PtrToWritableMemOrNull) break;
                    // As many bytes as the size argument after it says (one byte when none follows).
                    bool sized = i + 1 < args.Length && args[i + 1] is ArgType.ConstSize or ArgType.ConstSizeOrZero;
                    size = sized ? Arg(i + 1, r1, r2, r3, r4, r5) : 1;
                    if (sized && size == 0) break;
                    if (size > int.MaxValue) problem = $"is followed by a size of {size} bytes";
                    writes = args[i] is ArgType.PtrToUninitMem or ArgType.PtrToWritableMemOrNull;
                    break;
                case ArgType.PtrToCtx:
                    if (value != ctx && !MemoryRegions.IsBlockStart(value, MemoryRegionKind.Context)) problem = "is not the program's context";
                    break;
                case ArgType.PtrToSocket or ArgType.PtrToSocketOrNull or ArgType.PtrToSockCommonOrNull or ArgType.PtrToBtfIdSockCommon:
                    if (value == 0 && args[i] is ArgType.PtrToSocketOrNull or ArgType.PtrToSockCommonOrNull) break;
                    // A known socket of 0 means none: NULL is no socket (the kernel's verifier refuses it here).
                    if (value == 0 || (value != knownSocket && !MemoryRegions.IsBlockStart(value, MemoryRegionKind.Socket))) problem = "is not a socket";
                    break;
                case ArgType.PtrToSpinLock:
                    problem = MapFieldProblem(value, "bpf_spin_lock", static m => m.SpinLockOffset, out _);
                    break;
                case ArgType.PtrToTimer:
                    problem = MapFieldProblem(value, "bpf_timer", static m => m.TimerOffset, out timerMap);
                    break;
                case ArgType.PtrToAlignedLong:
                    size = sizeof(long);
                    writes = true;
                    if (value % sizeof(long) != 0) problem = "is not aligned to 8 bytes";
                    break;
                case ArgType.PtrToUninitLocalDynptr or ArgType.PtrToUninitRingbufDynptr:
                    size = Dynptr.Bytes;
                    writes = true;
                    break;
                case ArgType.PtrToDynptr or ArgType.PtrToRingbufDynptrRelease:
                    // The dynptr, then the data it describes: a forged dynptr must not lead the helper elsewhere.
                    // A release also empties the dynptr: it writes it.
                    size = Dynptr.Bytes;
                    writes = args[i] == ArgType.PtrToRingbufDynptrRelease;
                    if (!Holds(ref probe, value, Dynptr.Bytes, writes)) break;
                    problem = args[i] == ArgType.PtrToDynptr ? DynptrDataProblem(ref probe, value) : RingbufDynptrProblem(value);
                    break;
                case ArgType.PtrToRingbufMem:
                    // Submit and discard rewrite the record's header and find its ring from it: only a record's start will do.
                    if (!RingBufMap.IsReserved(value)) problem = "is not the start of a ring-buffer record reserved and not yet submitted or discarded";
                    break;
                case ArgType.PtrToConstStr:
                    problem = ConstStringProblem(value);
                    break;
                case ArgType.PtrToStackOrNull:
                    // Passed on to a callback as its context, which reaches memory only through checked accesses.
                    if (value != 0) size = 1;
                    break;
                case ArgType.PtrToFunc:
                    // Resolved by the helper (Callbacks.FromHandle), which raises BpfRuntimeException for anything but a live callback.
                    break;
                case ArgType.PtrToBtfId or ArgType.PtrToBtfIdOrNull or ArgType.PtrToPercpuBtfId:
                    // Kernel BTF pointers are handles here: the helpers that take them (task storage, task stack, per-CPU
                    // pointers) compare or return them, never read through them.
                    break;
                default:
                    // A new argument kind must say here what it is checked against (docs/reliability.md, "Helper arguments").
                    problem = $"has argument kind {args[i]}, which the checking engines do not know";
                    break;
            }
            if (problem == null && size > 0 && !Holds(ref probe, value, (int)size, writes))
                problem = writes ? $"does not point to {size} byte(s) the program may write" : $"does not point to {size} byte(s) the program may touch";
            if (problem == null) continue;
            throw Fault(helper, i, value, problem, program, index);
        }
        // bpf_timer_init(timer, map, flags): the timer must be in a value of that map (the kernel's "timer pointer in R1
        // map_uid=... doesn't match map pointer in R2"): the timer finds its value through the map's layout.
        if (timerMap != null && map != null && !ReferenceEquals(timerMap, map))
            throw Fault(helper, 1, map.Handle, $"is map '{map.Name}', but the timer in r1 is in a value of map '{timerMap.Name}'", program, index);
        return map;
    }

    static BpfFaultException Fault(Helper helper, int arg, ulong value, string problem, Instruction[]? program, int index)
    {
        string text = BpfFaultException.Describe(program, index);
        return new BpfFaultException(index, text, "helper argument", value,
            $"instruction {index} ({text}): {helper.Name}: argument r{arg + 1} = 0x{value:x} {problem}");
    }

    // [address, +size) is the program's: read-only checks accept any region, a write only the stack, a map value or a record.
    static bool Holds<TProbe>(ref TProbe probe, ulong address, int size, bool writes) where TProbe : struct, IRegionProbe =>
        writes ? probe.HoldsStack(address, size) || MemoryRegions.ContainsWritable(address, size)
            : probe.Holds(address, size) || MemoryRegions.Contains(address, size);

    /// <summary>
    /// Why <paramref name="address"/> is not the <paramref name="field"/> of a live map value (at the offset
    /// <paramref name="offsetOf"/> gives for its map, -1 when the map's values have none), or null; <paramref name="owner"/> is that map.
    /// </summary>
    static string? MapFieldProblem(ulong address, string field, Func<BpfMap, int> offsetOf, out BpfMap? owner)
    {
        owner = null;
        foreach (var map in BpfMap.LiveMaps())
        {
            if (!map.FindValue(address, out ulong start, out int length) || address - start >= (ulong)length) continue;
            int offset = offsetOf(map);
            if (offset < 0) return $"points into a value of {map.Type} map '{map.Name}', which holds no {field}";
            if (address - start != (ulong)offset) return $"points to +{address - start} of a value of {map.Type} map '{map.Name}', whose {field} is at +{offset}";
            owner = map;
            return null;
        }
        return $"is not the {field} of a live map value";
    }

    /// <summary>Why the ring-buffer dynptr at <paramref name="address"/> is not one the program may submit or discard, or null.</summary>
    static unsafe string? RingbufDynptrProblem(ulong address)
    {
        var d = (ulong*)address;
        if (Dynptr.IsNull(d)) return null;
        if (Dynptr.Type(d) != Dynptr.TypeRingbuf) return "is not a ring-buffer dynptr";
        return RingBufMap.IsReserved(d[0]) ? null : $"is a dynptr whose record 0x{d[0]:x} is not reserved (submitted, discarded or never a record)";
    }

    /// <summary>Why <paramref name="address"/> is not a NUL-terminated string inside one region (a format, a constant to compare), or null.</summary>
    static unsafe string? ConstStringProblem(ulong address)
    {
        if (!MemoryRegions.TryFind(address, 1, out ulong start, out int length)) return "does not point to memory the program may touch";
        var bytes = new ReadOnlySpan<byte>((byte*)address, (int)((ulong)length - (address - start)));
        return bytes.IndexOf((byte)0) >= 0 ? null : "is a string with no NUL before the end of its region";
    }

    /// <summary>Why the data of the dynptr at <paramref name="address"/> is not the program's to touch, or null (a NULL dynptr has none).</summary>
    static unsafe string? DynptrDataProblem<TProbe>(ref TProbe probe, ulong address) where TProbe : struct, IRegionProbe
    {
        var d = (ulong*)address;
        if (Dynptr.IsNull(d)) return null;
        ulong data = (ulong)Dynptr.Data(d);
        int length = (int)Dynptr.Size(d);
        // bpf_dynptr_write and bpf_dynptr_data write through a dynptr that is not read-only.
        bool writes = !Dynptr.ReadOnly(d);
        if (length == 0 || Holds(ref probe, data, length, writes)) return null;
        return $"is a dynptr whose data [0x{data:x}, +{length}) is not memory the program may {(writes ? "write" : "touch")}";
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
