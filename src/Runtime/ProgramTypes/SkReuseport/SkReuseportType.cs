using BpfJit.Runtime.SkReuseport;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.ProgramTypes.SkReuseport;

/// <summary>
/// BPF_PROG_TYPE_SK_REUSEPORT: <c>struct sk_reuseport_md</c> and the kernel's <c>sk_reuseport_is_valid_access</c>,
/// <c>sk_reuseport_func_proto</c> (its own helpers over <c>bpf_base_func_proto</c>), read-only direct packet access,
/// and no return-value check (check_return_code has no case for this type: the hook treats anything but SK_PASS as a drop).
/// </summary>
public sealed class SkReuseportType : IProgramTypeDefinition
{
    /// <summary>The one instance.</summary>
    public static SkReuseportType Instance { get; } = new();

    SkReuseportType() { }

    /// <summary>Size of <c>struct sk_reuseport_md</c>.</summary>
    public const int Size = 56;

    /// <summary>Offset of <c>data</c> (PTR_TO_PACKET).</summary>
    public const int DataOffset = 0;
    /// <summary>Offset of <c>data_end</c> (PTR_TO_PACKET_END).</summary>
    public const int DataEndOffset = 8;
    /// <summary>Offset of <c>len</c>.</summary>
    public const int LenOffset = 16;
    /// <summary>Offset of <c>eth_protocol</c> (the skb's protocol, network byte order).</summary>
    public const int EthProtocolOffset = 20;
    /// <summary>Offset of <c>ip_protocol</c>.</summary>
    public const int IpProtocolOffset = 24;
    /// <summary>Offset of <c>bind_inany</c>.</summary>
    public const int BindInanyOffset = 28;
    /// <summary>Offset of <c>hash</c>.</summary>
    public const int HashOffset = 32;
    /// <summary>Offset of <c>sk</c> (PTR_TO_SOCKET).</summary>
    public const int SkOffset = 40;
    /// <summary>Offset of <c>migrating_sk</c> (PTR_TO_SOCK_COMMON_OR_NULL).</summary>
    public const int MigratingSkOffset = 48;

    static readonly CtxField s_data = new("data", DataOffset, 8, CtxFieldKind.PacketStart);
    static readonly CtxField s_dataEnd = new("data_end", DataEndOffset, 8, CtxFieldKind.PacketEnd);
    static readonly CtxField s_len = new("len", LenOffset, 4);
    static readonly CtxField s_ethProtocol = new("eth_protocol", EthProtocolOffset, 4);
    static readonly CtxField s_ipProtocol = new("ip_protocol", IpProtocolOffset, 4);
    static readonly CtxField s_bindInany = new("bind_inany", BindInanyOffset, 4);
    static readonly CtxField s_hash = new("hash", HashOffset, 4);
    static readonly CtxField s_sk = new("sk", SkOffset, 8, CtxFieldKind.Socket);
    static readonly CtxField s_migratingSk = new("migrating_sk", MigratingSkOffset, 8, CtxFieldKind.SockCommonOrNull);

    static readonly CtxField[] s_fields = [s_data, s_dataEnd, s_len, s_ethProtocol, s_ipProtocol, s_bindInany, s_hash, s_sk, s_migratingSk];

    /// <summary>BPF_FUNC_sk_select_reuseport.</summary>
    public static int SkSelectReuseportId { get; } = HelperNames.Id("sk_select_reuseport");
    /// <summary>BPF_FUNC_skb_load_bytes.</summary>
    public static int SkbLoadBytesId { get; } = HelperNames.Id("skb_load_bytes");
    /// <summary>BPF_FUNC_skb_load_bytes_relative.</summary>
    public static int SkbLoadBytesRelativeId { get; } = HelperNames.Id("skb_load_bytes_relative");
    /// <summary>BPF_FUNC_get_socket_cookie.</summary>
    public static int GetSocketCookieId { get; } = HelperNames.Id("get_socket_cookie");

    /// <summary>
    /// <c>bpf_sk_select_reuseport(ctx, map, key, flags)</c>: ctx, a REUSEPORT_SOCKARRAY, SOCKMAP or SOCKHASH, a pointer to
    /// the map's key, flags (must be 0 at run time).
    /// </summary>
    public static HelperProto SkSelectReuseportProto { get; } =
        new(RetType.Integer, ArgType.PtrToCtx, ArgType.ConstMapPtr, ArgType.PtrToMapKey, ArgType.Anything);

    /// <summary><c>bpf_skb_load_bytes(ctx, offset, to, len)</c> as this type gets it (sk_reuseport_load_bytes).</summary>
    public static HelperProto SkbLoadBytesProto { get; } =
        new(RetType.Integer, ArgType.PtrToCtx, ArgType.Anything, ArgType.PtrToUninitMem, ArgType.ConstSize);

    /// <summary><c>bpf_skb_load_bytes_relative(ctx, offset, to, len, start_header)</c> (sk_reuseport_load_bytes_relative).</summary>
    public static HelperProto SkbLoadBytesRelativeProto { get; } =
        new(RetType.Integer, ArgType.PtrToCtx, ArgType.Anything, ArgType.PtrToUninitMem, ArgType.ConstSize, ArgType.Anything);

    /// <summary><c>bpf_get_socket_cookie(sk)</c> on a socket pointer or NULL (bpf_get_socket_ptr_cookie_proto).</summary>
    public static HelperProto GetSocketCookieProto { get; } = new(RetType.Integer, ArgType.PtrToSockCommonOrNull);

    // sk_reuseport_func_proto: its own five, then bpf_base_func_proto (not the socket base: no skc_to_* casts).
    static readonly HashSet<int> s_helpers = BaseFuncProto.Ids(BaseFuncProto.Helpers.Concat(
        ["sk_select_reuseport", "skb_load_bytes", "skb_load_bytes_relative", "get_socket_cookie", "ktime_get_coarse_ns"]));

    /// <inheritdoc />
    public ProgramType Type => ProgramType.SkReuseport;
    /// <inheritdoc />
    public string KernelName => "BPF_PROG_TYPE_SK_REUSEPORT";
    /// <inheritdoc />
    public IReadOnlyList<string> SectionNames { get; } = ["sk_reuseport", "sk_reuseport/migrate"];
    /// <inheritdoc />
    public IReadOnlyList<AttachType> ExpectedAttachTypes { get; } = [AttachType.SkReuseportSelect, AttachType.SkReuseportSelectOrMigrate];
    /// <inheritdoc />
    public string ContextName => "struct sk_reuseport_md";
    /// <inheritdoc />
    public int ContextSize => Size;
    /// <inheritdoc />
    public IReadOnlyList<CtxField> ContextFields => s_fields;
    /// <inheritdoc />
    public PacketAccess PacketAccess => PacketAccess.Read;
    /// <inheritdoc />
    public bool MayUpdateSockMap => true;
    /// <inheritdoc />
    public ReturnRange? ReturnRange => null;

    /// <inheritdoc/>
    public (int Offset, int Width) FoldContextLoad(int offset, int size) => SkReuseportLayout.Fold(offset, size);

    /// <inheritdoc/>
    public int NarrowLoadOffset(int offset, int size) => SkReuseportLayout.NarrowLoadOffset(offset, size);
    /// <inheritdoc />
    public IReadOnlyList<string> AttachPoints { get; } =
    [
        "reuseport group (setsockopt SO_ATTACH_REUSEPORT_EBPF): picks the member socket of a TCP or UDP reuseport group, after an SK_LOOKUP selection without BPF_SK_LOOKUP_F_NO_REUSEPORT and in the regular listener lookup",
        "BPF_SK_REUSEPORT_SELECT_OR_MIGRATE: also when a closing or full listener's requests migrate (migrating_sk set)",
    ];

    /// <inheritdoc />
    public CtxField? ContextAccess(int off, int size, bool write)
    {
        if (off < 0 || off >= Size || size <= 0 || off % size != 0 || write) return null;
        switch (off)
        {
            case DataOffset: return size == 8 ? s_data : null;
            case DataEndOffset: return size == 8 ? s_dataEnd : null;
            case HashOffset: return size == 4 ? s_hash : null;
            case SkOffset: return size == 8 ? s_sk : null;
            case MigratingSkOffset: return size == 8 ? s_migratingSk : null;
            // eth_protocol is the skb's 2-byte protocol: no load narrower than that.
            case >= EthProtocolOffset and < IpProtocolOffset:
                return size >= 2 && Narrow(size) ? s_ethProtocol : null;
            case >= LenOffset and < EthProtocolOffset: return Narrow(size) ? s_len : null;
            case >= IpProtocolOffset and < BindInanyOffset: return Narrow(size) ? s_ipProtocol : null;
            case >= BindInanyOffset and < HashOffset: return Narrow(size) ? s_bindInany : null;
            default: return null;
        }
    }

    // bpf_ctx_narrow_access_ok with the 4-byte default size: a power of two no wider than the field.
    static bool Narrow(int size) => size <= 4 && (size & (size - 1)) == 0;

    /// <inheritdoc />
    public bool IsHelperAllowed(int id) => s_helpers.Contains(id);
    /// <inheritdoc />
    public bool IsGplOnly(int id) => BaseFuncProto.IsGplOnly(id);

    /// <inheritdoc />
    public HelperProto? HelperProto(int id) =>
        id == SkSelectReuseportId ? SkSelectReuseportProto
        : id == SkbLoadBytesId ? SkbLoadBytesProto
        : id == SkbLoadBytesRelativeId ? SkbLoadBytesRelativeProto
        : id == GetSocketCookieId ? GetSocketCookieProto
        : null;
}
