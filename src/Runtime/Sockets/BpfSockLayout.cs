namespace BpfJit.Runtime.Sockets;

/// <summary>
/// Layout of a socket's native block: the 80-byte UAPI <c>struct bpf_sock</c> that programs read
/// directly through <c>PTR_TO_SOCKET</c>, followed by runtime-only fields that helpers read
/// (never reachable by a verified program, which may only access the first 80 bytes).
/// </summary>
public static class BpfSockLayout
{
    /// <summary>Size of the UAPI view.</summary>
    public const int ViewSize = 80;
    /// <summary>Size of the whole native block.</summary>
    public const int BlockSize = 128;

    /// <summary><c>__u32 bound_dev_if</c>.</summary>
    public const int BoundDevIf = 0;
    /// <summary><c>__u32 family</c> (u16 value).</summary>
    public const int Family = 4;
    /// <summary><c>__u32 type</c>: SOCK_STREAM 1, SOCK_DGRAM 2.</summary>
    public const int Type = 8;
    /// <summary><c>__u32 protocol</c>.</summary>
    public const int Protocol = 12;
    /// <summary><c>__u32 mark</c>.</summary>
    public const int Mark = 16;
    /// <summary><c>__u32 priority</c>.</summary>
    public const int Priority = 20;
    /// <summary><c>__u32 src_ip4</c>, network order.</summary>
    public const int SrcIp4 = 24;
    /// <summary><c>__u32 src_ip6[4]</c>, network order.</summary>
    public const int SrcIp6 = 28;
    /// <summary><c>__u32 src_port</c>, host order.</summary>
    public const int SrcPort = 44;
    /// <summary><c>__be16 dst_port</c>, followed by 2 bytes of padding.</summary>
    public const int DstPort = 48;
    /// <summary><c>__u32 dst_ip4</c>.</summary>
    public const int DstIp4 = 52;
    /// <summary><c>__u32 dst_ip6[4]</c>.</summary>
    public const int DstIp6 = 56;
    /// <summary><c>__u32 state</c> (BPF_TCP_*).</summary>
    public const int State = 72;
    /// <summary><c>__s32 rx_queue_mapping</c>, -1 when none.</summary>
    public const int RxQueueMapping = 76;

    /// <summary>Runtime flags (<see cref="SockFlags"/>), u32.</summary>
    public const int Flags = 80;
    /// <summary>A constant tag that marks a live socket block (u32).</summary>
    public const int Magic = 84;
    /// <summary>The socket cookie (u64).</summary>
    public const int Cookie = 88;
    /// <summary>A GC handle to the managed <see cref="Sock"/> (pointer-sized).</summary>
    public const int Owner = 96;
    /// <summary>Program-held references of a refcounted socket (i32).</summary>
    public const int RefCount = 104;
    /// <summary>
    /// The id of the reuseport group the socket is in (u32; 0: none), the kernel's <c>sk_reuseport_cb-&gt;reuseport_id</c>:
    /// <c>bpf_sk_select_reuseport</c> compares it with the group the program runs for.
    /// </summary>
    public const int ReuseportId = 108;

    /// <summary>The value stored at <see cref="Magic"/> ("SOCK").</summary>
    public const uint MagicValue = 0x4b434f53;

    /// <summary>BPF_TCP_ESTABLISHED.</summary>
    public const uint TcpEstablished = 1;
    /// <summary>BPF_TCP_CLOSE.</summary>
    public const uint TcpClose = 7;
    /// <summary>BPF_TCP_LISTEN.</summary>
    public const uint TcpListen = 10;
    /// <summary>SOCK_STREAM.</summary>
    public const uint SockStream = 1;
    /// <summary>SOCK_DGRAM.</summary>
    public const uint SockDgram = 2;
}

/// <summary>Runtime flags in a socket's native block, read by the helpers.</summary>
[Flags]
public enum SockFlags : uint
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>The kernel's <c>sk_is_refcounted</c>: not a hashed TCP listener or a bound UDP socket.</summary>
    Refcounted = 1,
    /// <summary>IPV6_V6ONLY.</summary>
    V6Only = 2,
    /// <summary>SO_REUSEPORT.</summary>
    ReusePort = 4,
    /// <summary>The socket is closed; it is never handed out again.</summary>
    Closed = 8,
}
