using BpfJit.Frontend;

namespace BpfJit.Runtime.Checked;

/// <summary>
/// A program run ended in a fault: an access outside every region it may touch
/// (<see cref="BpfCheckedModeException"/>), a division by zero the verifier's facts ruled out, or a helper
/// handed an argument that is not what its prototype demands. The run was aborted before the faulting
/// operation, so no memory outside the program's regions was read or written. Through the SK_LOOKUP hook a
/// fault counts as SK_DROP for that lookup (docs/sk-lookup-runtime.md, "Faults").
/// </summary>
public class BpfFaultException : BpfException
{
    readonly string _detail;

    /// <summary>Creates the fault of instruction <paramref name="index"/>; <paramref name="detail"/> says what happened.</summary>
    public BpfFaultException(int index, string disassembly, string access, ulong address, string detail)
        : base(detail)
    {
        Index = index;
        Disassembly = disassembly;
        Access = access;
        Address = address;
        _detail = detail;
    }

    /// <summary>Creates a fault whose cause is <paramref name="inner"/> (an exception a program run raised outside every guard).</summary>
    public BpfFaultException(int index, string disassembly, string access, ulong address, string detail, Exception inner)
        : base(detail, inner)
    {
        Index = index;
        Disassembly = disassembly;
        Access = access;
        Address = address;
        _detail = detail;
    }

    /// <summary>
    /// The typed fault for an exception that escaped a program run where no guard stood: a
    /// <see cref="NullReferenceException"/> (the runtime's name for an access to the lowest page, which a wrong
    /// verifier fact let through unguarded) or a <see cref="DivideByZeroException"/>. Others: null.
    /// </summary>
    public static BpfFaultException? FromRunException(Exception e) => e switch
    {
        BpfFaultException f => f,
        NullReferenceException => new BpfFaultException(-1, "", "load or store", 0,
            "the program touched the lowest page of memory (a NULL pointer) where no runtime guard stood", e),
        DivideByZeroException => new BpfFaultException(-1, "", "division", 0,
            "the program divided by zero where no runtime guard stood", e),
        _ => null,
    };

    /// <summary>The name of the program that faulted, when the run went through a named program (an <c>SkLookupProgram</c>); else null.</summary>
    public string? Program { get; private set; }

    /// <summary>The slot index of the faulting instruction.</summary>
    public int Index { get; }

    /// <summary>The instruction, disassembled.</summary>
    public string Disassembly { get; }

    /// <summary>What faulted: <c>load</c>, <c>store</c>, <c>atomic</c>, <c>division</c>, <c>modulo</c> or <c>helper argument</c>.</summary>
    public string Access { get; }

    /// <summary>The address the faulting operation would have touched (0 for a division).</summary>
    public ulong Address { get; }

    /// <summary>The message, prefixed with the program's name once known.</summary>
    public override string Message => Program == null ? _detail : $"program {Program}: {_detail}";

    /// <summary>Names the program the fault happened in (the first name set wins: a tail-called program names itself first).</summary>
    public BpfFaultException InProgram(string name)
    {
        Program ??= name;
        return this;
    }

    /// <summary>The disassembly of slot <paramref name="index"/> of <paramref name="program"/>, or "" when unknown.</summary>
    public static string Describe(Instruction[]? program, int index) =>
        program != null && index >= 0 && index < program.Length ? Disassembler.Format(program, index) : "";

    /// <summary>
    /// A division or modulo by zero in code compiled on the verifier's word that the divisor is never zero:
    /// the fact was wrong, and the run ends here rather than with a <see cref="DivideByZeroException"/>.
    /// </summary>
    public static BpfFaultException DivisionByZero(Instruction[]? program, int index, bool modulo)
    {
        string text = Describe(program, index);
        return new BpfFaultException(index, text, modulo ? "modulo" : "division", 0,
            $"instruction {index} ({text}): {(modulo ? "modulo" : "division")} by zero, where the verifier's facts said the divisor is never zero");
    }
}
