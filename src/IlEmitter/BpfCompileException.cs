using BpfJit.Frontend;

namespace BpfJit.IlEmitter;

/// <summary>
/// An instruction the JIT cannot compile, or IL that RyuJIT refused: carries the slot index and the
/// instruction's disassembly, so the message reads <c>instruction 5 (r0 = *(u32 *)(r1 + 8)): reason</c>.
/// </summary>
public sealed class BpfCompileException : BpfException
{
    /// <summary>Creates a compile error for slot <paramref name="index"/> whose disassembly is <paramref name="disassembly"/>.</summary>
    public BpfCompileException(int index, string disassembly, string reason, Exception? inner = null)
        : base(index < 0 ? reason : $"instruction {index} ({disassembly}): {reason}", inner ?? new InvalidOperationException(reason))
    {
        Index = index;
        Disassembly = disassembly;
        Reason = reason;
    }

    /// <summary>The slot index of the instruction, or -1 when the error is not tied to one.</summary>
    public int Index { get; }

    /// <summary>The instruction as the disassembler prints it (empty when <see cref="Index"/> is -1).</summary>
    public string Disassembly { get; }

    /// <summary>What went wrong.</summary>
    public string Reason { get; }
}
