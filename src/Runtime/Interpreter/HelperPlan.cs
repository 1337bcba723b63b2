using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>
/// The interpreter's per-call-site plan for checking a helper's pointer arguments quickly: each argument's kind from the
/// helper's prototype, three bits per argument, computed once when the program is prepared. <see cref="Accepts"/> vouches
/// for a call only in the ways <see cref="Checked.HelperArguments.Check(Helper, ulong, ulong, ulong, ulong, ulong, ulong, ulong, int, Frontend.Instruction[], int)"/>
/// itself accepts without the registry (the call site's last map, keys and values on the stack or in the run's cache,
/// the run's own context, the socket a lookup returned to this run); anything else, and every prototype with another
/// pointer kind, goes to that full check, which finds the region or raises the fault.
/// </summary>
internal static class HelperPlan
{
    const int None = 0, Map = 1, Key = 2, Value = 3, Ctx = 4, Socket = 5, SocketOrNull = 6;

    /// <summary>A plan with no pointer argument: nothing to check.</summary>
    public const int Nothing = 0;

    /// <summary>A plan the quick path cannot take: always the full check.</summary>
    public const int Full = -1;

    /// <summary>(const map, key): bpf_map_lookup_elem, bpf_map_delete_elem.</summary>
    public const int MapKey = Map | Key << 3;

    /// <summary>(ctx, socket or NULL, scalar): bpf_sk_assign.</summary>
    public const int CtxSocketOrNull = Ctx | SocketOrNull << 3;

    /// <summary>(socket): bpf_sk_release.</summary>
    public const int OneSocket = Socket;

    /// <summary>The plan of <paramref name="helper"/>'s prototype.</summary>
    public static int Of(Helper helper)
    {
        if (ReferenceEquals(helper.Proto, HelperProto.Unknown)) return Nothing;
        var args = helper.Proto.Args;
        if (args.Length > 5) return Full;
        int plan = 0;
        for (int i = 0; i < args.Length; i++)
        {
            int kind = args[i] switch
            {
                ArgType.DontCare or ArgType.Anything or ArgType.ConstSize or ArgType.ConstSizeOrZero
                    or ArgType.ConstAllocSizeOrZero or ArgType.PtrToFunc => None,
                ArgType.ConstMapPtr => Map,
                ArgType.PtrToMapKey => Key,
                ArgType.PtrToMapValue or ArgType.PtrToUninitMapValue => Value,
                ArgType.PtrToCtx => Ctx,
                ArgType.PtrToSocket => Socket,
                ArgType.PtrToSocketOrNull => SocketOrNull,
                _ => -1,
            };
            if (kind < 0) return Full;
            plan |= kind << (3 * i);
        }
        return plan;
    }

    /// <summary>
    /// True when every pointer argument in r1..r5 (<paramref name="reg"/>[1..5]) is one the run already knows, as
    /// <paramref name="plan"/> describes them; <paramref name="map"/> is then the map argument (or null).
    /// False: ask the full check.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static unsafe bool Accepts(int plan, ulong* reg, ulong ctx, BpfMap? lastMap, ref RunState run, out BpfMap? map)
    {
        map = null;
        for (int i = 1; plan != 0; i++, plan >>= 3)
        {
            ulong value = reg[i];
            switch (plan & 7)
            {
                case Map:
                    if (lastMap == null || lastMap.Handle != value || lastMap.IsDisposed) return false;
                    map = lastMap;
                    break;
                case Key:
                    if (map != null && !run.Holds(value, map.KeySize)) return false;
                    break;
                case Value:
                    if (map != null && !run.Holds(value, map.ValueSize)) return false;
                    break;
                case Ctx:
                    if (value != ctx || value == 0) return false;
                    break;
                case Socket:
                    if (value != run.LastSocket || value == 0) return false;
                    break;
                case SocketOrNull:
                    if (value != 0 && value != run.LastSocket) return false;
                    break;
            }
        }
        return true;
    }
}
