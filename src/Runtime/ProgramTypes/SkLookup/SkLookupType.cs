using BpfJit.Runtime.SkLookup;
using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.ProgramTypes.SkLookup;

/// <summary>
/// BPF_PROG_TYPE_SK_LOOKUP: <c>struct bpf_sk_lookup</c> and the kernel's <c>sk_lookup_is_valid_access</c>,
/// <c>sk_lookup_func_proto</c> (with <c>bpf_sk_base_func_proto</c>) and its return range (SK_DROP, SK_PASS).
/// </summary>
public sealed class SkLookupType : IProgramTypeDefinition
{
    /// <summary>The one instance.</summary>
    public static SkLookupType Instance { get; } = new();

    SkLookupType() { }

    /// <summary>Size of <c>struct bpf_sk_lookup</c>.</summary>
    public const int Size = 72;

    static readonly CtxField[] s_fields =
    [
        new("sk", 0, 8, CtxFieldKind.SocketOrNull),
        new("family", 8, 4), new("protocol", 12, 4), new("remote_ip4", 16, 4),
        new("remote_ip6[0]", 20, 4), new("remote_ip6[1]", 24, 4), new("remote_ip6[2]", 28, 4), new("remote_ip6[3]", 32, 4),
        new("remote_port", 36, 2), new("pad", 38, 2), new("local_ip4", 40, 4),
        new("local_ip6[0]", 44, 4), new("local_ip6[1]", 48, 4), new("local_ip6[2]", 52, 4), new("local_ip6[3]", 56, 4),
        new("local_port", 60, 4), new("ingress_ifindex", 64, 4),
    ];

    // sk_lookup_func_proto: its own three, then bpf_sk_base_func_proto's socket casts and coarse clock, then the base.
    static readonly HashSet<int> s_helpers = BaseFuncProto.Ids(BaseFuncProto.Helpers.Concat(
    [
        "perf_event_output", "sk_assign", "sk_release", "ktime_get_coarse_ns",
        "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
        "skc_to_unix_sock", "skc_to_mptcp_sock",
    ]));

    /// <inheritdoc />
    public ProgramType Type => ProgramType.SkLookup;
    /// <inheritdoc />
    public string KernelName => "BPF_PROG_TYPE_SK_LOOKUP";
    /// <inheritdoc />
    public IReadOnlyList<string> SectionNames { get; } = ["sk_lookup", "sk_lookup/"];
    /// <inheritdoc />
    public IReadOnlyList<AttachType> ExpectedAttachTypes { get; } = [AttachType.SkLookup];
    /// <inheritdoc />
    public string ContextName => "struct bpf_sk_lookup";
    /// <inheritdoc />
    public int ContextSize => Size;
    /// <inheritdoc />
    public IReadOnlyList<CtxField> ContextFields => s_fields;
    /// <inheritdoc />
    public PacketAccess PacketAccess => PacketAccess.None;
    /// <inheritdoc />
    public bool MayUpdateSockMap => true;
    /// <inheritdoc />
    public ReturnRange? ReturnRange => new ReturnRange(0, 1);

    /// <inheritdoc/>
    public (int Offset, int Width) FoldContextLoad(int offset, int size) => SkLookupLayout.Fold(offset, size);

    /// <inheritdoc/>
    public int NarrowLoadOffset(int offset, int size) => size == 2 && CtxLoadRewriter.IsQuirkOffset(offset) ? offset - 2 : offset;
    /// <inheritdoc />
    public IReadOnlyList<string> AttachPoints { get; } = ["network namespace (BPF_LINK_CREATE, BPF_SK_LOOKUP): before the socket lookup of each TCP SYN and UDP datagram"];

    static bool NarrowOk(int size, int fieldSize) => size <= fieldSize && (size & (size - 1)) == 0;

    static CtxField At(int off) => Array.Find(s_fields, f => f.Contains(off))!;

    /// <inheritdoc />
    public CtxField? ContextAccess(int off, int size, bool write)
    {
        if (off < 0 || off >= Size || size <= 0) return null;
        if (off % size != 0 || write) return null;
        switch (off)
        {
            case 0:
                return size == 8 ? s_fields[0] : null;
            case >= 8 and < 36:
            case >= 40 and < 68:
                return NarrowOk(size, 4) ? At(off) : null;
            case >= 36 and < 40:
                // A 4-byte load of the 2-byte remote_port is accepted for backward compatibility.
                if (off == 36 && size == 4) return At(off);
                return NarrowOk(size, 2) ? At(off) : null;
            default:
                return null;
        }
    }

    /// <inheritdoc />
    public bool IsHelperAllowed(int id) => s_helpers.Contains(id);
    /// <inheritdoc />
    public bool IsGplOnly(int id) => BaseFuncProto.IsGplOnly(id);
    /// <inheritdoc />
    public HelperProto? HelperProto(int id) => null;
}
