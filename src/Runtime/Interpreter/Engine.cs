using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>A program made ready to run by an engine: r1 and r2 in, r0 out.</summary>
public delegate ulong BpfEntry(ulong r1, ulong r2);

/// <summary>An execution engine: the interpreter or the JIT.</summary>
public interface IBpfEngine
{
    /// <summary>The engine's name as the CLI spells it (<c>interpreter</c>, <c>jit</c>).</summary>
    string Name { get; }

    /// <summary>Prepares a program; throws a <see cref="BpfException"/> when it cannot run it.</summary>
    BpfEntry Prepare(Instruction[] program, HelperTable helpers);

    /// <summary>
    /// Prepares a program a verifier accepted, with the <paramref name="facts"/> it proved (null: none).
    /// An engine may use them to specialise the code; by default they are ignored.
    /// </summary>
    BpfEntry Prepare(Instruction[] program, HelperTable helpers, ProgramFacts? facts) => Prepare(program, helpers);

    /// <summary>
    /// Prepares a program as <see cref="Prepare(Instruction[], HelperTable, ProgramFacts?)"/> does, its code named
    /// <paramref name="symbol"/>: the kernel's name for the program's JIT image (<see cref="ProgramSymbol"/>), which
    /// profilers then show (null: the engine's default). An engine that makes no code of its own ignores it.
    /// </summary>
    BpfEntry Prepare(Instruction[] program, HelperTable helpers, ProgramFacts? facts, string? symbol) => Prepare(program, helpers, facts);

    /// <summary>
    /// Prepares a program as <see cref="Prepare(Instruction[], HelperTable, ProgramFacts?, string?)"/> does, as an entry
    /// that contains its faults (<see cref="RunFaults"/>): what <see cref="RunFaults.IsFault"/> names does not leave it;
    /// it is recorded for the thread and the entry returns <see cref="RunFaults.Sentinel"/>. Null (the default): the
    /// engine has no such entry, and the caller wraps the plain one (<see cref="RunFaults.Wrap"/>).
    /// </summary>
    BpfEntry? PrepareContained(Instruction[] program, HelperTable helpers, ProgramFacts? facts, string? symbol) => null;
}

/// <summary>The interpreter as an <see cref="IBpfEngine"/>.</summary>
public sealed class InterpreterEngine : IBpfEngine
{
    /// <summary>The shared instance.</summary>
    public static InterpreterEngine Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "interpreter";

    /// <inheritdoc />
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers) => Prepare(program, helpers, null);

    /// <inheritdoc />
    /// <remarks>The interpreter takes one fact: which loads read kernel objects (<see cref="SlotFacts.ProbeMem"/>).</remarks>
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers, ProgramFacts? facts)
    {
        var interpreter = Create(program, helpers, facts);
        return (r1, r2) => interpreter.Run(r1, r2);
    }

    /// <inheritdoc />
    /// <remarks>The handler is in the entry's own frame, around the run.</remarks>
    public BpfEntry? PrepareContained(Instruction[] program, HelperTable helpers, ProgramFacts? facts, string? symbol)
    {
        var interpreter = Create(program, helpers, facts);
        return (r1, r2) =>
        {
            try
            {
                return interpreter.Run(r1, r2);
            }
            catch (Exception e) when (RunFaults.IsFault(e))
            {
                return RunFaults.Contain(e);
            }
        };
    }

    static Interpreter Create(Instruction[] program, HelperTable helpers, ProgramFacts? facts) =>
        new(program, helpers, facts != null && facts.Describes(program) ? facts : null);
}
