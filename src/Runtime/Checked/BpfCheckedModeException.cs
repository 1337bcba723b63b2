namespace BpfJit.Runtime.Checked;

/// <summary>
/// A program touched memory outside every region it may reach (context, its stack frames, a live map
/// value, a socket view, a reserved ring-buffer record). Raised before the access, so nothing was read or
/// written. The interpreter checks every access; the JIT checks all of them in checked mode and, by
/// default, those the verifier's proof does not make trivial (docs/jit.md, "Runtime guards").
/// </summary>
public sealed class BpfCheckedModeException : BpfFaultException
{
    /// <summary>Creates the error for a <paramref name="size"/>-byte <paramref name="access"/> at <paramref name="address"/> by instruction <paramref name="index"/>.</summary>
    public BpfCheckedModeException(int index, string disassembly, string access, ulong address, int size, string nearest)
        : base(index, disassembly, access, address,
            $"instruction {index} ({disassembly}): checked mode: {size}-byte {access} at 0x{address:x} is outside every region the program may touch; {nearest}")
    {
        Size = size;
        Nearest = nearest;
    }

    /// <summary>The access width in bytes.</summary>
    public int Size { get; }

    /// <summary>The region nearest to the address, and how far it is, in words.</summary>
    public string Nearest { get; }
}
