using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.ProgramTypes;

/// <summary>
/// What a load of one context field gives the program: the register type the kernel's
/// <c>*_is_valid_access</c> sets in <c>info-&gt;reg_type</c> (a scalar when it sets none).
/// </summary>
public enum CtxFieldKind
{
    /// <summary>A number (SCALAR_VALUE).</summary>
    Scalar,
    /// <summary>The first byte of the packet (PTR_TO_PACKET, <c>data</c>).</summary>
    PacketStart,
    /// <summary>One past the last byte of the packet (PTR_TO_PACKET_END, <c>data_end</c>).</summary>
    PacketEnd,
    /// <summary>A socket, never NULL (PTR_TO_SOCKET).</summary>
    Socket,
    /// <summary>A socket or NULL (PTR_TO_SOCKET_OR_NULL).</summary>
    SocketOrNull,
    /// <summary>The common part of a socket, or NULL (PTR_TO_SOCK_COMMON_OR_NULL).</summary>
    SockCommonOrNull,
}

/// <summary>
/// One field of a program type's context structure: its offset and size in the structure the program sees
/// (<c>struct bpf_sk_lookup</c>, <c>struct sk_reuseport_md</c>) and what loading it yields. An array member is one
/// field per element (<c>remote_ip6[1]</c>), the name the JIT's facts and dumps carry.
/// </summary>
/// <param name="Name">The field's name in the uapi structure.</param>
/// <param name="Offset">Offset in bytes.</param>
/// <param name="Size">Size in bytes (8 for the <c>__bpf_md_ptr</c> pointers).</param>
/// <param name="Yields">What a load of it gives.</param>
public sealed record CtxField(string Name, int Offset, int Size, CtxFieldKind Yields = CtxFieldKind.Scalar)
{
    /// <summary>True when <paramref name="off"/> is inside this field.</summary>
    public bool Contains(int off) => off >= Offset && off < Offset + Size;
}

/// <summary>Direct packet access a program type has through <c>data</c>/<c>data_end</c> (the kernel's may_access_direct_pkt_data).</summary>
public enum PacketAccess
{
    /// <summary>No packet pointers in the context.</summary>
    None,
    /// <summary>Reads only: a store through a packet pointer is refused (<c>cannot write into packet</c>).</summary>
    Read,
    /// <summary>Reads and writes.</summary>
    ReadWrite,
}

/// <summary>The values a program of a type may return from its main function (the kernel's check_return_code range).</summary>
/// <param name="Min">Smallest allowed value.</param>
/// <param name="Max">Largest allowed value.</param>
public readonly record struct ReturnRange(int Min, int Max);

/// <summary>
/// One kernel program type, declared in one place: how the loader recognises it, its context layout and the
/// kernel's rule for reading it, the helpers the kernel offers it (its func_proto), what it may return and where it
/// attaches. The verifier, the loader's notes, the engines and the CLI ask <see cref="ProgramTypeRegistry.Get"/> for
/// the declaration of a program's type; adding a type is a new folder beside <c>SkLookup/</c> and
/// <c>SkReuseport/</c> and one line in the registry.
/// </summary>
public interface IProgramTypeDefinition
{
    /// <summary>The kernel's enum bpf_prog_type value.</summary>
    ProgramType Type { get; }

    /// <summary>The kernel's name, e.g. <c>BPF_PROG_TYPE_SK_REUSEPORT</c>.</summary>
    string KernelName { get; }

    /// <summary>The ELF section names libbpf gives this type (a name ending in '/' is a prefix).</summary>
    IReadOnlyList<string> SectionNames { get; }

    /// <summary>The expected attach types BPF_PROG_LOAD accepts for it (the first is the default).</summary>
    IReadOnlyList<AttachType> ExpectedAttachTypes { get; }

    /// <summary>The context structure's C name, e.g. <c>struct sk_reuseport_md</c>.</summary>
    string ContextName { get; }

    /// <summary>Size of the context structure in bytes.</summary>
    int ContextSize { get; }

    /// <summary>The context's fields, by offset.</summary>
    IReadOnlyList<CtxField> ContextFields { get; }

    /// <summary>
    /// The kernel's <c>*_is_valid_access</c> for this type: the field a load of <paramref name="size"/> bytes at
    /// <paramref name="off"/> reads (narrow loads included), or null when the access is invalid
    /// (<c>invalid bpf_context access off=N size=M</c>). <paramref name="write"/>: a store.
    /// </summary>
    CtxField? ContextAccess(int off, int size, bool write);

    /// <summary>
    /// The kernel's answer to a context load the verifier accepted (its <c>*_convert_ctx_access</c>), as the engines'
    /// context block holds it: the offset and byte count a <paramref name="size"/>-byte load at UAPI offset
    /// <paramref name="offset"/> reads (zero-extended), width 0 meaning the constant 0. The JIT decides each load
    /// with it at compile time.
    /// </summary>
    (int Offset, int Width) FoldContextLoad(int offset, int size);

    /// <summary>
    /// The offset a plain <paramref name="size"/>-byte load at <paramref name="offset"/> must read instead for the
    /// kernel's value (a narrow load the kernel answers from the field's start), or <paramref name="offset"/> itself:
    /// the rewrite both engines run before they prepare the program (<c>CtxLoadRewriter</c>).
    /// </summary>
    int NarrowLoadOffset(int offset, int size);

    /// <summary>Direct packet access through the context's packet pointers.</summary>
    PacketAccess PacketAccess { get; }

    /// <summary>True when the kernel's func_proto for this type offers helper <paramref name="id"/> to a privileged loader.</summary>
    bool IsHelperAllowed(int id);

    /// <summary>True when the prototype the type gets for helper <paramref name="id"/> is GPL-only.</summary>
    bool IsGplOnly(int id);

    /// <summary>
    /// The prototype this type's func_proto gives helper <paramref name="id"/> when it is the type's own (the kernel
    /// returns a per-type proto for e.g. <c>bpf_skb_load_bytes</c>), or null when the helper table's applies.
    /// </summary>
    HelperProto? HelperProto(int id);

    /// <summary>True when programs of this type may update and delete SOCKMAP/SOCKHASH entries (the kernel's may_update_sockmap).</summary>
    bool MayUpdateSockMap { get; }

    /// <summary>The main program's allowed return values, or null when the kernel does not check them.</summary>
    ReturnRange? ReturnRange { get; }

    /// <summary>Where programs of this type run, in the kernel's words (for the CLI and docs).</summary>
    IReadOnlyList<string> AttachPoints { get; }
}
