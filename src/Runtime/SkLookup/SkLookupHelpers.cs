using System.Runtime.CompilerServices;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkLookup;

/// <summary>
/// The SK_LOOKUP-specific helpers, each defined once: id, prototype, and the static method both
/// engines call. <c>sk_assign</c> implements the eight ordered checks of spec 3.2 on the native
/// context and socket blocks; <c>sk_release</c> drops a reference taken by a sockmap lookup (3.3).
/// </summary>
public static unsafe class SkLookupHelpers
{
    /// <summary>Helper id of bpf_sk_release.</summary>
    public const int SkReleaseId = 86;
    /// <summary>Helper id of bpf_sk_assign.</summary>
    public const int SkAssignId = 124;

    /// <summary>bpf_sk_assign (124): <c>RET_INTEGER (ARG_PTR_TO_CTX, ARG_PTR_TO_SOCKET_OR_NULL, ARG_ANYTHING)</c>.</summary>
    public static Helper SkAssignHelper { get; } = new(SkAssignId, "bpf_sk_assign", SkAssign,
        new HelperProto(RetType.Integer, ArgType.PtrToCtx, ArgType.PtrToSocketOrNull, ArgType.Anything));

    /// <summary>bpf_sk_release (86): <c>RET_INTEGER (ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE)</c>.</summary>
    public static Helper SkReleaseHelper { get; } = new(SkReleaseId, "bpf_sk_release", SkRelease,
        new HelperProto(RetType.Integer, ArgType.PtrToSocket));

    /// <summary>Adds sk_assign and sk_release to <paramref name="table"/>.</summary>
    public static HelperTable AddTo(HelperTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        return table.Add(SkAssignHelper).Add(SkReleaseHelper);
    }

    /// <summary>
    /// The helpers an SK_LOOKUP program may call (spec 3.1) that this runtime provides: the kernel's
    /// base helpers (<see cref="KernelHelpers.All"/>) plus sk_assign and sk_release.
    /// </summary>
    public static HelperTable CreateTable()
    {
        var table = new HelperTable();
        foreach (var h in KernelHelpers.All) table.Add(h);
        return AddTo(table);
    }

    static ulong Neg(int errno) => (ulong)(long)-errno;

    /// <summary>
    /// <c>long bpf_sk_assign(struct bpf_sk_lookup *ctx, struct bpf_sock *sk, u64 flags)</c>.
    /// Checks, first failure wins: unknown flags (-EINVAL); a refcounted socket (-ESOCKTNOSUPPORT);
    /// TCP not listening (-ESOCKTNOSUPPORT); UDP connected (-ESOCKTNOSUPPORT); protocol mismatch
    /// (-EPROTOTYPE); family mismatch for an AF_INET or v6only socket (-EAFNOSUPPORT); a selection
    /// exists and F_REPLACE is clear (-EEXIST, also for NULL). Then selects (NULL clears), records
    /// F_NO_REUSEPORT and returns 0. No reference is taken.
    /// </summary>
    // Inlined into JIT-compiled programs: a DynamicMethod is compiled once, fully optimised but without
    // profile data, and RyuJIT's inliner then leaves this call out of line (docs/perf.md, branch jitgap).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SkAssign(ulong ctx, ulong sk, ulong flags, ulong r4, ulong r5)
    {
        byte* c = (byte*)ctx;
        if ((flags & ~(SkLookupLayout.FlagReplace | SkLookupLayout.FlagNoReuseport)) != 0) return Neg(Errno.EINVAL);
        if (sk != 0)
        {
            byte* s = (byte*)sk;
            SockFlags sflags = (SockFlags)(*(uint*)(s + BpfSockLayout.Flags));
            if ((sflags & SockFlags.Refcounted) != 0) return Neg(Errno.ESOCKTNOSUPPORT);
            uint protocol = *(uint*)(s + BpfSockLayout.Protocol);
            uint type = *(uint*)(s + BpfSockLayout.Type);
            uint state = *(uint*)(s + BpfSockLayout.State);
            if (protocol == (uint)SocketProtocol.Tcp && type == BpfSockLayout.SockStream && state != BpfSockLayout.TcpListen)
                return Neg(Errno.ESOCKTNOSUPPORT);
            if (protocol == (uint)SocketProtocol.Udp && type == BpfSockLayout.SockDgram && state != BpfSockLayout.TcpClose)
                return Neg(Errno.ESOCKTNOSUPPORT);
            if (protocol != *(uint*)(c + SkLookupLayout.Protocol)) return Neg(Errno.EPROTOTYPE);
            uint family = *(uint*)(s + BpfSockLayout.Family);
            if (family != *(uint*)(c + SkLookupLayout.Family)
                && (family == (uint)SocketFamily.Inet || (sflags & SockFlags.V6Only) != 0))
                return Neg(Errno.EAFNOSUPPORT);
        }
        // The hidden selection, not ctx->sk, which an unverified program may have overwritten (SkLookupLayout.SelectedSk).
        if (*(ulong*)(c + SkLookupLayout.SelectedSk) != 0 && (flags & SkLookupLayout.FlagReplace) == 0) return Neg(Errno.EEXIST);
        *(ulong*)(c + SkLookupLayout.Sk) = sk;
        *(ulong*)(c + SkLookupLayout.SelectedSk) = sk;
        *(uint*)(c + SkLookupLayout.NoReuseport) = (flags & SkLookupLayout.FlagNoReuseport) != 0 ? 1u : 0u;
        return 0;
    }

    /// <summary>
    /// <c>long bpf_sk_release(void *sk)</c>: drops the reference a sockmap lookup took on a
    /// refcounted socket (a no-op for the RCU-freed ones), always returns 0.
    /// </summary>
    public static ulong SkRelease(ulong sk, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (sk != 0) Sock.Release((nint)sk);
        return 0;
    }
}
