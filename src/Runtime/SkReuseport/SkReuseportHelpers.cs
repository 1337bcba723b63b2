using System.Runtime.CompilerServices;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>
/// The SK_REUSEPORT-specific helpers (<c>sk_reuseport_func_proto</c>, Linux 6.18), each defined once: id, prototype
/// and the static method both engines call (the JIT as a direct call). They read the context block
/// (<see cref="SkReuseportLayout"/>) through the ctx pointer in r1.
/// </summary>
public static unsafe class SkReuseportHelpers
{
    /// <summary>Helper id of bpf_skb_load_bytes.</summary>
    public const int SkbLoadBytesId = 26;
    /// <summary>Helper id of bpf_get_socket_cookie.</summary>
    public const int GetSocketCookieId = 46;
    /// <summary>Helper id of bpf_skb_load_bytes_relative.</summary>
    public const int SkbLoadBytesRelativeId = 68;
    /// <summary>Helper id of bpf_sk_select_reuseport.</summary>
    public const int SkSelectReuseportId = 82;

    /// <summary>BPF_HDR_START_MAC.</summary>
    public const uint HdrStartMac = 0;
    /// <summary>BPF_HDR_START_NET.</summary>
    public const uint HdrStartNet = 1;

    /// <summary>bpf_sk_select_reuseport (82): <c>RET_INTEGER (ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING)</c>.</summary>
    public static Helper SkSelectReuseportHelper { get; } = new(SkSelectReuseportId, "bpf_sk_select_reuseport", SkSelectReuseport,
        ProgramTypes.SkReuseport.SkReuseportType.SkSelectReuseportProto);

    /// <summary>bpf_skb_load_bytes (26), the SK_REUSEPORT variant: <c>(ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_UNINIT_MEM, ARG_CONST_SIZE)</c>.</summary>
    public static Helper SkbLoadBytesHelper { get; } = new(SkbLoadBytesId, "bpf_skb_load_bytes", SkbLoadBytes,
        ProgramTypes.SkReuseport.SkReuseportType.SkbLoadBytesProto);

    /// <summary>bpf_skb_load_bytes_relative (68): <c>(ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_UNINIT_MEM, ARG_CONST_SIZE, ARG_ANYTHING)</c>.</summary>
    public static Helper SkbLoadBytesRelativeHelper { get; } = new(SkbLoadBytesRelativeId, "bpf_skb_load_bytes_relative", SkbLoadBytesRelative,
        ProgramTypes.SkReuseport.SkReuseportType.SkbLoadBytesRelativeProto);

    /// <summary>bpf_get_socket_cookie (46) on a socket pointer (<c>bpf_get_socket_ptr_cookie_proto</c>).</summary>
    public static Helper GetSocketCookieHelper { get; } = new(GetSocketCookieId, "bpf_get_socket_cookie", GetSocketCookie,
        ProgramTypes.SkReuseport.SkReuseportType.GetSocketCookieProto);

    /// <summary>Adds the SK_REUSEPORT helpers to <paramref name="table"/>.</summary>
    public static HelperTable AddTo(HelperTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        return table.Add(SkSelectReuseportHelper).Add(SkbLoadBytesHelper).Add(SkbLoadBytesRelativeHelper).Add(GetSocketCookieHelper);
    }

    /// <summary>The helpers an SK_REUSEPORT program may call: the kernel's base helpers (<see cref="KernelHelpers.All"/>) plus its own.</summary>
    public static HelperTable CreateTable()
    {
        var table = new HelperTable();
        foreach (var h in KernelHelpers.All) table.Add(h);
        return AddTo(table);
    }

    static ulong Neg(int errno) => (ulong)(long)-errno;

    /// <summary>
    /// <c>long bpf_sk_select_reuseport(struct sk_reuseport_md *reuse, struct bpf_map *map, void *key, u64 flags)</c>,
    /// in the kernel's order: no socket at <c>key</c> -ENOENT; a socket not hashed in a reuseport group -ENOENT from a
    /// REUSEPORT_SOCKARRAY (it was closed after the lookup) or -EINVAL from a SOCKMAP/SOCKHASH (it never was in one);
    /// a socket of another group -EPROTOTYPE when its protocol differs from ctx-&gt;sk's, -EAFNOSUPPORT when its family
    /// does, else -EBADFD; otherwise it becomes the selection and the result is 0. <c>flags</c> is not read (the kernel
    /// ignores it). A reference a SOCKMAP/SOCKHASH lookup took on a refcounted socket is dropped on every error.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SkSelectReuseport(ulong ctx, ulong map, ulong key, ulong flags, ulong r5)
    {
        byte* c = (byte*)ctx;
        var m = BpfMap.FromHandle(map);
        // The kernel's verifier allows only these map types here (check_map_func_compatibility); another map's value
        // would be read as a socket block.
        if (m.Type is not (MapType.ReuseportSockArray or MapType.SockMap or MapType.SockHash)) WrongMap(m);
        ulong selected = m.LookupElem(key);
        if (selected == 0) return Neg(Errno.ENOENT);
        byte* s = (byte*)selected;
        uint id = *(uint*)(s + BpfSockLayout.ReuseportId);
        if (id == 0 || !Hashed(s)) return Fail((nint)selected, m.Type == MapType.ReuseportSockArray ? Errno.ENOENT : Errno.EINVAL);
        if (id != *(uint*)(c + SkReuseportLayout.ReuseportId))
        {
            byte* sk = *(byte**)(c + SkReuseportLayout.KernSk);
            if (*(uint*)(sk + BpfSockLayout.Protocol) != *(uint*)(s + BpfSockLayout.Protocol)) return Fail((nint)selected, Errno.EPROTOTYPE);
            if (*(uint*)(sk + BpfSockLayout.Family) != *(uint*)(s + BpfSockLayout.Family)) return Fail((nint)selected, Errno.EAFNOSUPPORT);
            return Fail((nint)selected, Errno.EBADFD);
        }
        *(ulong*)(c + SkReuseportLayout.SelectedSk) = selected;
        return 0;
    }

    // Out of line: the helper itself is inlined into JIT-compiled programs.
    [MethodImpl(MethodImplOptions.NoInlining)]
    static void WrongMap(BpfMap m) => throw new Checked.BpfFaultException(-1, "", "helper argument", m.Handle,
        $"bpf_sk_select_reuseport: map '{m.Name}' is a {m.Type}, not a REUSEPORT_SOCKARRAY, SOCKMAP or SOCKHASH");

    // A socket in a group is hashed with its reuseport_cb in the kernel only as a TCP listener or a UDP socket that is
    // bound (connected or not); this runtime's table groups a TCP socket at bind (docs/sk-lookup-runtime.md).
    static bool Hashed(byte* s) => *(uint*)(s + BpfSockLayout.Protocol) != (uint)SocketProtocol.Tcp
        || *(uint*)(s + BpfSockLayout.State) == BpfSockLayout.TcpListen;

    static ulong Fail(nint selected, int errno)
    {
        Sock.Release(selected);
        return Neg(errno);
    }

    /// <summary>
    /// <c>long bpf_skb_load_bytes(const void *skb, u32 offset, void *to, u32 len)</c> on the packet from the transport
    /// header (<c>data</c>): copies <c>len</c> bytes at <c>offset</c>, or zeroes <c>to</c> and returns -EFAULT when
    /// the range passes the packet's end (or the offset exceeds INT_MAX).
    /// </summary>
    public static ulong SkbLoadBytes(ulong ctx, ulong offset, ulong to, ulong len, ulong r5)
    {
        byte* c = (byte*)ctx;
        uint off = (uint)offset, n = (uint)len;
        uint length = *(uint*)(c + SkReuseportLayout.KernLen);
        if (off > int.MaxValue || (ulong)off + n > length) return Clear(to, n);
        Buffer.MemoryCopy(*(byte**)(c + SkReuseportLayout.KernData) + off, (void*)to, n, n);
        return 0;
    }

    /// <summary>
    /// <c>long bpf_skb_load_bytes_relative(const void *skb, u32 offset, void *to, u32 len, u32 start_header)</c>: as
    /// <see cref="SkbLoadBytes"/> from the MAC header (BPF_HDR_START_MAC) or the network header (BPF_HDR_START_NET);
    /// an offset above 0xffff, another start_header or a range past the packet's end zero <c>to</c> and return -EFAULT.
    /// </summary>
    public static ulong SkbLoadBytesRelative(ulong ctx, ulong offset, ulong to, ulong len, ulong startHeader)
    {
        byte* c = (byte*)ctx;
        uint off = (uint)offset, n = (uint)len;
        if (off > 0xffff) return Clear(to, n);
        byte* start = (uint)startHeader switch
        {
            HdrStartMac => *(byte**)(c + SkReuseportLayout.MacHeader),
            HdrStartNet => *(byte**)(c + SkReuseportLayout.NetworkHeader),
            _ => null,
        };
        byte* end = *(byte**)(c + SkReuseportLayout.KernDataEnd);
        if (start == null || start + off + n > end) return Clear(to, n);
        Buffer.MemoryCopy(start + off, (void*)to, n, n);
        return 0;
    }

    static ulong Clear(ulong to, uint n)
    {
        new Span<byte>((void*)to, (int)n).Clear();
        return Neg(Errno.EFAULT);
    }

    /// <summary><c>u64 bpf_get_socket_cookie(struct sock *sk)</c>: the socket's cookie, 0 for NULL.</summary>
    public static ulong GetSocketCookie(ulong sk, ulong r2, ulong r3, ulong r4, ulong r5) => sk == 0 ? 0 : Sock.CookieOf((nint)sk);
}
