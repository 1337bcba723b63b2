namespace BpfJit.Verifier;

/// <summary>
/// Which loads of <c>struct bpf_sk_lookup</c> (the context) and <c>struct bpf_sock</c> are valid:
/// the kernel's <c>sk_lookup_is_valid_access</c> and <c>bpf_sock_is_valid_access</c>
/// (sk-lookup.md sections 1.1 and 4).
/// </summary>
public static class ContextRules
{
    /// <summary>Size of <c>struct bpf_sk_lookup</c>.</summary>
    public const int SkLookupSize = 72;

    /// <summary>Size of <c>struct bpf_sock</c>.</summary>
    public const int BpfSockSize = 80;

    static bool NarrowOk(int size, int fieldSize) => size <= fieldSize && (size & (size - 1)) == 0;

    /// <summary>
    /// The field a context access reads, or null when the access is invalid
    /// (<c>invalid bpf_context access off=N size=M</c>). Writes are never valid.
    /// </summary>
    public static string? SkLookupField(int off, int size, bool write)
    {
        if (off < 0 || off >= SkLookupSize) return null;
        if (off % size != 0) return null;
        if (write) return null;
        switch (off)
        {
            case 0:
                return size == 8 ? "sk" : null;
            case >= 8 and < 12: return NarrowOk(size, 4) ? "family" : null;
            case >= 12 and < 16: return NarrowOk(size, 4) ? "protocol" : null;
            case >= 16 and < 20: return NarrowOk(size, 4) ? "remote_ip4" : null;
            case >= 20 and < 36: return NarrowOk(size, 4) ? $"remote_ip6[{(off - 20) / 4}]" : null;
            case >= 36 and < 38:
                // A 4-byte load of the 2-byte remote_port is accepted for backward compatibility.
                if (size == 4) return "remote_port";
                return NarrowOk(size, 2) ? "remote_port" : null;
            case >= 38 and < 40: return NarrowOk(size, 2) ? "pad" : null;
            case >= 40 and < 44: return NarrowOk(size, 4) ? "local_ip4" : null;
            case >= 44 and < 60: return NarrowOk(size, 4) ? $"local_ip6[{(off - 44) / 4}]" : null;
            case >= 60 and < 64: return NarrowOk(size, 4) ? "local_port" : null;
            case >= 64 and < 68: return NarrowOk(size, 4) ? "ingress_ifindex" : null;
            default: return null;
        }
    }

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
}
