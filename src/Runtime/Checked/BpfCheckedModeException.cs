using BpfJit.Frontend;

namespace BpfJit.Runtime.Checked;

/// <summary>
/// A checked-mode program touched memory outside every region it may reach (context, its stack,
/// a live map value, a socket view, a reserved ring-buffer record). Raised before the access, so
/// nothing was read or written. Only programs compiled with checked mode raise it.
/// </summary>
public sealed class BpfCheckedModeException : BpfException
{
    /// <summary>Creates the error for a <paramref name="size"/>-byte <paramref name="access"/> at <paramref name="address"/> by instruction <paramref name="index"/>.</summary>
    public BpfCheckedModeException(int index, string disassembly, string access, ulong address, int size, string nearest)
        : base($"instruction {index} ({disassembly}): checked mode: {size}-byte {access} at 0x{address:x} is outside every region the program may touch; {nearest}")
    {
        Index = index;
        Disassembly = disassembly;
        Access = access;
        Address = address;
        Size = size;
        Nearest = nearest;
    }

    /// <summary>The slot index of the faulting instruction.</summary>
    public int Index { get; }

    /// <summary>The instruction, disassembled.</summary>
    public string Disassembly { get; }

    /// <summary><c>load</c>, <c>store</c> or <c>atomic</c>.</summary>
    public string Access { get; }

    /// <summary>The first byte the instruction would have touched.</summary>
    public ulong Address { get; }

    /// <summary>The access width in bytes.</summary>
    public int Size { get; }

    /// <summary>The region nearest to the address, and how far it is, in words.</summary>
    public string Nearest { get; }
}
