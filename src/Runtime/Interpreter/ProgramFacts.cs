using BpfJit.Frontend;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>
/// What a verifier proved about one instruction slot, in runtime terms (the verifier's own types live
/// in a higher layer). An engine that specialises code (the JIT) reads these; the interpreter ignores them.
/// </summary>
public sealed record SlotFacts
{
    /// <summary>Facts of a slot nothing is known about: reachable, no specialisation.</summary>
    public static SlotFacts Unknown { get; } = new();

    /// <summary>Facts of a slot no path reaches.</summary>
    public static SlotFacts Unreachable { get; } = new() { Reachable = false };

    /// <summary>True when some path reaches the slot (false: dead code an engine need not compile).</summary>
    public bool Reachable { get; init; } = true;

    /// <summary>For a division or modulo by a register: the divisor is never zero on any path.</summary>
    public bool DivisorNonZero { get; init; }

    /// <summary>For a load from the context: the field read (e.g. <c>local_port</c>), else null.</summary>
    public string? CtxField { get; init; }

    /// <summary>For a load from the context: its offset in the UAPI context struct as the program wrote it, else -1.</summary>
    public int CtxOffset { get; init; } = -1;

    /// <summary>For a helper call: the map passed as its map argument on every path, else null.</summary>
    public BpfMap? Map { get; init; }

    /// <summary>For a load, store or atomic: the map whose value the base register points to on every path, else null (checked mode holds the access to that map's values).</summary>
    public BpfMap? MemMap { get; init; }

    /// <summary>
    /// For a load, store or atomic: the base register's offset is not a constant on some path, so the access
    /// stays in its region only by the verifier's range reasoning. The JIT guards such an access at run time.
    /// </summary>
    public bool VariableOffset { get; init; }

    /// <summary>
    /// For a load: it reads a kernel object through a BTF pointer (the kernel's BPF_PROBE_MEM load). Engines read it
    /// through <see cref="KernelProbe"/>: the object's image, or 0 where there is none.
    /// </summary>
    public bool ProbeMem { get; init; }
}

/// <summary>
/// The facts a verifier proved about a whole program, by slot: reachability, non-zero divisors,
/// context field accesses, the map behind each helper call, and the stack use. Produced by an
/// <see cref="SkLookup.IProgramVerifier"/> and handed to <see cref="IBpfEngine.Prepare(Instruction[], HelperTable, ProgramFacts?)"/>;
/// facts describe the program they were computed for, so an engine checks <see cref="Describes"/> first.
/// </summary>
public sealed class ProgramFacts
{
    readonly SlotFacts[] _slots;
    readonly byte[] _opcodes;

    /// <summary>
    /// Creates the facts of <paramref name="program"/>: <paramref name="slots"/> has one entry per slot
    /// (the second slot of an ld_imm64 included); <paramref name="stackDepths"/> gives the stack bytes of
    /// each subprogram, the main program first.
    /// </summary>
    public ProgramFacts(Instruction[] program, IReadOnlyList<SlotFacts> slots, bool mayReadUninitStack, IReadOnlyList<int> stackDepths)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(slots);
        ArgumentNullException.ThrowIfNull(stackDepths);
        if (slots.Count != program.Length) throw new ArgumentException($"{slots.Count} slot facts for a program of {program.Length} slots", nameof(slots));
        _slots = [.. slots];
        // A loop, not Select(...).ToArray(): LINQ over the Instruction struct is framework code RyuJIT compiles
        // at a process's first program (docs/perf.md, "Cold start").
        _opcodes = new byte[program.Length];
        for (int i = 0; i < program.Length; i++) _opcodes[i] = program[i].Opcode;
        MayReadUninitStack = mayReadUninitStack;
        StackDepths = [.. stackDepths];
    }

    /// <summary>
    /// The program type the facts were proved for: its context layout decides what a context load reads
    /// (<see cref="SlotFacts.CtxOffset"/> is an offset in that type's context structure).
    /// </summary>
    public Frontend.Elf.ProgramType ProgramType { get; init; } = Frontend.Elf.ProgramType.SkLookup;

    /// <summary>The number of slots described.</summary>
    public int Count => _slots.Length;

    /// <summary>The facts of slot <paramref name="slot"/>.</summary>
    public SlotFacts this[int slot] => _slots[slot];

    /// <summary>True when some path may read stack bytes it never wrote: the stack must then start zeroed.</summary>
    public bool MayReadUninitStack { get; }

    /// <summary>Stack bytes each subprogram uses (the main program's at index 0).</summary>
    public IReadOnlyList<int> StackDepths { get; }

    /// <summary>
    /// True when these facts were computed for <paramref name="program"/>: same length and the same opcode
    /// in every slot (binding map references and the ctx-load rewrite change operands, never opcodes).
    /// </summary>
    public bool Describes(Instruction[] program)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (program.Length != _opcodes.Length) return false;
        for (int i = 0; i < program.Length; i++)
            if (program[i].Opcode != _opcodes[i]) return false;
        return true;
    }
}
