using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>An error while preparing or running a program: an unknown helper, too deep a call chain, an unsupported instruction.</summary>
public sealed class BpfRuntimeException : BpfException
{
    /// <summary>Creates an error at instruction <paramref name="index"/>.</summary>
    public BpfRuntimeException(int index, string reason) : base($"instruction {index}: {reason}")
    {
        Index = index;
        Reason = reason;
    }

    /// <summary>The slot index of the instruction.</summary>
    public int Index { get; }

    /// <summary>What went wrong.</summary>
    public string Reason { get; }
}
