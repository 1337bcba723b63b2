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
    /// slot <paramref name="index"/> is valid; returns the map argument, if any.
    /// </summary>
    /// <remarks>
    /// A context argument must be <paramref name="ctx"/>, the r1 the run was started with (whatever its caller
    /// passed: a test may pass any number), or a registered context block (a callback's caller's context).
    /// </remarks>
    public static BpfMap? Check(Helper helper, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ulong ctx, Instruction[]? program, int index)
    {
        ArgumentNullException.ThrowIfNull(helper);
        var args = helper.Proto.Args;
        if (args.Length == 0 || ReferenceEquals(helper.Proto, HelperProto.Unknown)) return null;
        Span<ulong> r = [r1, r2, r3, r4, r5];
        BpfMap? map = null;
        for (int i = 0; i < args.Length; i++)
        {
            ulong value = r[i];
            ulong next = i + 1 < 5 ? r[i + 1] : 0;
            string? problem = args[i] switch
            {
                ArgType.ConstMapPtr => BpfMap.TryFromHandle(value, out map) ? null : "is not a live map",
                ArgType.PtrToMapKey => map == null ? null : Region(value, map.KeySize, "the map's key"),
                ArgType.PtrToMapValue or ArgType.PtrToUninitMapValue => map == null ? null : Region(value, map.ValueSize, "the map's value"),
                ArgType.PtrToMemOrNull when value == 0 => null,
                ArgType.PtrToMem or ArgType.PtrToUninitMem or ArgType.PtrToMemOrNull => Memory(value, args, i, next),
                ArgType.PtrToCtx => value == ctx || MemoryRegions.IsBlockStart(value, MemoryRegionKind.Context) ? null : "is not the program's context",
                ArgType.PtrToSocketOrNull when value == 0 => null,
                ArgType.PtrToSocket or ArgType.PtrToSocketOrNull => MemoryRegions.IsBlockStart(value, MemoryRegionKind.Socket) ? null : "is not a socket",
                ArgType.PtrToSpinLock => Region(value, BpfSpinLock.Size, "a bpf_spin_lock"),
                ArgType.PtrToStackOrNull when value == 0 => null,
                ArgType.PtrToStackOrNull or ArgType.PtrToRingbufMem or ArgType.PtrToConstStr => Region(value, 1, "memory"),
                _ => null,
            };
            if (problem == null) continue;
            string text = BpfFaultException.Describe(program, index);
            throw new BpfFaultException(index, text, "helper argument", value,
                $"instruction {index} ({text}): {helper.Name}: argument r{i + 1} = 0x{value:x} {problem}");
        }
        return map;
    }

    /// <summary>True when the helper ends the program's hold on memory it was given (ring-buffer submit and discard).</summary>
    public static bool ReleasesMemory(Helper helper)
    {
        ArgumentNullException.ThrowIfNull(helper);
        return Array.IndexOf(helper.Proto.Args, ArgType.PtrToRingbufMem) >= 0;
    }

    /// <summary>
    /// The bytes a helper's non-NULL result <paramref name="r0"/> lets the program touch, as the verifier types it:
    /// a map value (a socket view for SOCKMAP and SOCKHASH), a reserved ring-buffer record of the requested size;
    /// 0 when the result is no pointer. <paramref name="map"/> is what <see cref="Check"/> returned.
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

    /// <summary>A memory argument: as many bytes as the size argument after it says (one byte when none follows).</summary>
    static string? Memory(ulong address, ArgType[] args, int i, ulong size)
    {
        bool sized = i + 1 < args.Length && args[i + 1] is ArgType.ConstSize or ArgType.ConstSizeOrZero;
        if (!sized) return Region(address, 1, "memory");
        if (size == 0) return null;
        if (size > int.MaxValue) return $"is followed by a size of {size} bytes";
        return Region(address, (int)size, $"{size} bytes of memory");
    }

    static string? Region(ulong address, int size, string what) =>
        MemoryRegions.Contains(address, size) ? null : $"does not point to {what} the program may touch";
}
