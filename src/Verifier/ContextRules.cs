using BpfJit.Runtime.ProgramTypes.SkLookup;

namespace BpfJit.Verifier;

/// <summary>
/// Which loads of <c>struct bpf_sock</c> are valid (the kernel's <c>bpf_sock_is_valid_access</c> and
/// <c>bpf_sock_common_is_valid_access</c>), and SK_LOOKUP's context rule as its declaration
/// (<see cref="SkLookupType"/>) states it. Each program type's context rule is its declaration's
/// <see cref="Runtime.ProgramTypes.IProgramTypeDefinition.ContextAccess"/>.
/// </summary>
public static class ContextRules
{
    /// <summary>Size of <c>struct bpf_sk_lookup</c>.</summary>
    public const int SkLookupSize = SkLookupType.Size;

    /// <summary>Size of <c>struct bpf_sock</c>.</summary>
    public const int BpfSockSize = 80;

    static bool NarrowOk(int size, int fieldSize) => size <= fieldSize && (size & (size - 1)) == 0;

    /// <summary>
    /// The field an SK_LOOKUP context access reads, or null when the access is invalid
    /// (<c>invalid bpf_context access off=N size=M</c>). Writes are never valid.
    /// </summary>
    public static string? SkLookupField(int off, int size, bool write) => SkLookupType.Instance.ContextAccess(off, size, write)?.Name;

    /// <summary>True when a load of <paramref name="size"/> bytes at <paramref name="off"/> of <c>struct bpf_sock</c> is valid.</summary>
    public static bool BpfSockReadable(int off, int size)
    {
        if (off < 0 || off >= BpfSockSize) return false;
        if (off % size != 0) return false;
        switch (off)
        {
            case 4 or 8 or 12 or 44 or 72 or 76:
            case >= 24 and < 44:
            case >= 52 and < 72:
                return NarrowOk(size, 4);
            case 48 or 49:
                return NarrowOk(size, size == 4 ? 4 : 2);
            case 50 or 51:
                return false;
            default:
                return size == 4;
        }
    }

    /// <summary>
    /// True when a load through a <c>sock_common</c> pointer is valid: as <see cref="BpfSockReadable"/>, except that
    /// <c>type</c>, <c>protocol</c>, <c>mark</c> and <c>priority</c> (offsets 8 to 23) are not in the common part.
    /// </summary>
    public static bool SockCommonReadable(int off, int size) => off is not (>= 8 and < 24) && BpfSockReadable(off, size);
}
