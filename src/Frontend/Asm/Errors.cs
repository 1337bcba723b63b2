namespace BpfJit.Frontend;

/// <summary>Base type of every error BpfJit raises for bad input.</summary>
public class BpfException : Exception
{
    /// <summary>Creates an error with a one-line message.</summary>
    public BpfException(string message) : base(message) { }

    /// <summary>Creates an error with a one-line message and its cause.</summary>
    public BpfException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A bad instruction encoding: unknown opcode, reserved field set, truncated ld_imm64, bad register.</summary>
public sealed class BpfDecodeException : BpfException
{
    /// <summary>Creates a decode error for instruction <paramref name="index"/>.</summary>
    public BpfDecodeException(int index, string reason) : base($"instruction {index}: {reason}")
    {
        Index = index;
        Reason = reason;
    }

    /// <summary>The slot index of the offending instruction.</summary>
    public int Index { get; }

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; }
}

/// <summary>An assembly source line that cannot be assembled.</summary>
public sealed class BpfAssemblerException : BpfException
{
    /// <summary>Creates an assembler error for 1-based source line <paramref name="line"/>.</summary>
    public BpfAssemblerException(int line, string reason) : base($"line {line}: {reason}")
    {
        Line = line;
        Reason = reason;
    }

    /// <summary>The 1-based source line.</summary>
    public int Line { get; }

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; }
}
