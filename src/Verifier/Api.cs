using BpfJit.Frontend;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// What the verifier needs to know about one map a program references: the kernel's map type
/// and its sizes. Programs refer to maps by index into the list passed in
/// <see cref="VerifierOptions.Maps"/> (ld_imm64 with src 1/5 for a map, 2/6 for a value address).
/// </summary>
/// <param name="Name">The map's name, for messages.</param>
/// <param name="Type">The kernel's map type (the loader's <see cref="MapType"/>).</param>
/// <param name="KeySize">Key size in bytes.</param>
/// <param name="ValueSize">Value size in bytes.</param>
/// <param name="MaxEntries">Maximum number of entries (ring buffer size for RINGBUF).</param>
/// <param name="Flags">Map flags as given at creation.</param>
/// <param name="IsReadOnly">True when programs may not write values (BPF_F_RDONLY_PROG, e.g. .rodata).</param>
/// <param name="FrozenValue">
/// The value of a frozen, program-read-only single-entry array (libbpf's <c>.rodata</c>): as the kernel
/// does for such maps, a load at a constant offset reads a known constant. Null for every other map.
/// </param>
/// <param name="SpinLockOffset">Offset of the <c>struct bpf_spin_lock</c> in the value, from the map's BTF value type, or -1.</param>
/// <param name="HasBtf">True when the map was created with a BTF value type (the kernel asks for one before bpf_spin_lock and bpf_timer).</param>
/// <param name="InnerMap">
/// For ARRAY_OF_MAPS and HASH_OF_MAPS: the template of the maps stored in it (the kernel's inner_map_meta). A
/// lookup returns a pointer to a map of this shape, or NULL.
/// </param>
/// <param name="TimerOffset">Offset of the <c>struct bpf_timer</c> in the value, from the map's BTF value type, or -1.</param>
/// <param name="Kptrs">The kptr fields of the value (<c>__kptr</c>, <c>__kptr_untrusted</c> members of its BTF type), or null.</param>
public sealed record MapInfo(string Name, MapType Type, int KeySize, int ValueSize, int MaxEntries, uint Flags = 0, bool IsReadOnly = false,
    byte[]? FrozenValue = null, int SpinLockOffset = -1, bool HasBtf = false, MapInfo? InnerMap = null, int TimerOffset = -1,
    IReadOnlyList<KptrField>? Kptrs = null)
{
    /// <summary>BPF_F_RDONLY_PROG: programs may only read values.</summary>
    public const uint FlagReadOnlyProg = 0x80;
    /// <summary>BPF_F_WRONLY_PROG: programs may only write values.</summary>
    public const uint FlagWriteOnlyProg = 0x100;

    /// <summary>True when programs may not write values (<see cref="IsReadOnly"/> or BPF_F_RDONLY_PROG).</summary>
    public bool ProgramCannotWrite => IsReadOnly || (Flags & FlagReadOnlyProg) != 0;

    /// <summary>True when programs may not read values (BPF_F_WRONLY_PROG).</summary>
    public bool ProgramCannotRead => (Flags & FlagWriteOnlyProg) != 0;

    /// <summary>True for SOCKMAP and SOCKHASH, whose lookups return referenced sockets.</summary>
    public bool IsSockMap => Type is MapType.SockMap or MapType.SockHash;
}

/// <summary>Inputs of <see cref="Verifier.Verify"/>.</summary>
public sealed class VerifierOptions
{
    /// <summary>The helper registry; calls are checked against these prototypes. Required.</summary>
    public HelperTable Helpers { get; init; } = new();

    /// <summary>The maps, by the index ld_imm64 map references use.</summary>
    public IReadOnlyList<MapInfo> Maps { get; init; } = [];

    /// <summary>
    /// The program type, whose declaration (<see cref="Runtime.ProgramTypes.ProgramTypeRegistry"/>) gives the context rule,
    /// helpers and return range: <see cref="ProgramType.SkLookup"/> (the default) or <see cref="ProgramType.SkReuseport"/>.
    /// </summary>
    public ProgramType ProgramType { get; init; } = ProgramType.SkLookup;

    /// <summary>
    /// The kernel's log_level bits: 0 errors only in the result; 1 the error with its instruction; 2 every
    /// instruction with its state; 4 (BPF_LOG_STATS) the statistics (verification time, stack depth, processed
    /// instructions and states). They combine: 5 is 1|4, 6 is 2|4.
    /// </summary>
    public int LogLevel { get; init; } = 1;

    /// <summary>Optional source line per instruction index (BTF line info), named in error messages.</summary>
    public IReadOnlyDictionary<int, string>? LineInfo { get; init; }

    /// <summary>Optional subprogram names by start instruction (BTF func info), used in the log.</summary>
    public IReadOnlyDictionary<int, string>? FuncInfo { get; init; }

    /// <summary>
    /// Optional BTF func_info: one record per subprogram, in order, with its FUNC type in <see cref="Btf"/>.
    /// With it, as in the kernel, a function of global linkage is verified once, on its own, from its
    /// prototype, and each call to it is checked against that prototype; without it every function is
    /// verified in its caller's context.
    /// </summary>
    public IReadOnlyList<BtfFuncInfo>? FuncInfos { get; init; }

    /// <summary>The BTF <see cref="FuncInfos"/> refers to (<see cref="ProgramSpec.Btf"/> for an object's program).</summary>
    public BtfSpec? Btf { get; init; }

    /// <summary>
    /// The names of the kernel functions a kfunc call (<c>call</c> with src 2) refers to, by its immediate
    /// (the loader's <c>ProgramSpec.KernelFunctions</c>); null when the immediates are BpfJit's kfunc ids
    /// (<see cref="KfuncTable"/>, as in bound code).
    /// </summary>
    public IReadOnlyList<string>? KernelFunctions { get; init; }

    /// <summary>
    /// True (the default, for assembled code): an ld_imm64 with BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE names a map
    /// by its index in <see cref="Maps"/>, as BPF_PSEUDO_MAP_IDX does. False for an object's program, whose map
    /// references are relocated to BPF_PSEUDO_MAP_IDX: a raw map fd left in it names no map BpfJit has, and the
    /// program is rejected as the kernel rejects an fd that is not a map's (<c>fd 1 is not pointing to valid bpf_map</c>).
    /// </summary>
    public bool MapFdIsIndex { get; init; } = true;

    /// <summary>
    /// The program's license string (BPF_PROG_LOAD's <c>license</c>; an object's <c>license</c> section). A program
    /// whose license is not GPL-compatible (<see cref="SkLookupFuncProto.IsGplCompatible"/>) may not call GPL-only
    /// helpers. Default "GPL": instructions given without an object are loaded as the kernel oracle loads them.
    /// </summary>
    public string License { get; init; } = "GPL";
}

/// <summary>What the verifier proved about one instruction, for the JIT.</summary>
public sealed class InsnFacts
{
    internal RegType[] Types = new RegType[BpfAbi.RegisterCount];
    internal ushort Mixed;

    /// <summary>True when some path reaches this instruction.</summary>
    public bool Reachable { get; internal set; }

    /// <summary>The type of register <paramref name="reg"/> before this instruction, or null when paths disagree.</summary>
    public RegType? RegTypeBefore(int reg) => (Mixed & (1 << reg)) != 0 ? null : Types[reg];

    /// <summary>For a load from the context: the field read (e.g. <c>local_port</c>), else null.</summary>
    public string? CtxField { get; internal set; }

    /// <summary>For a load from the context: the offset in <c>struct bpf_sk_lookup</c>.</summary>
    public int CtxOffset { get; internal set; } = -1;

    /// <summary>For a division or modulo by a register: true when the divisor is never zero on any path.</summary>
    public bool DivisorNonZero { get; internal set; }

    /// <summary>For a helper call: the index of the map passed as its map argument (r1, or r2 for tail_call and perf_event_output) on every path, or -1 when none or when paths differ.</summary>
    public int MapArg { get; internal set; } = -1;

    internal bool MapArgSeen;
    internal bool DivSeen;

    /// <summary>
    /// For a load, store or atomic: the index of the map whose value the base register points to on every
    /// path that reaches it, or -1 (not a map value on some path, or values of different maps).
    /// </summary>
    public int MemMap { get; internal set; } = -1;

    /// <summary>
    /// For a load, store or atomic: true when on some path the base register's offset is not a constant
    /// (its var_off has unknown bits), so the access is in bounds only through the verifier's range
    /// reasoning; the JIT keeps a runtime guard there (docs/jit.md, "Runtime guards").
    /// </summary>
    public bool VariableOffset { get; internal set; }

    internal bool MemMapSeen;
    // The base register's pointer type on the first path that reached this access (the kernel's aux ptr_type).
    internal RegType? PtrTypeSeen;

    /// <summary>
    /// For a load: true when it reads a kernel object through a BTF pointer or untrusted memory (the kernel's BPF_PROBE_MEM
    /// load): the engines read the runtime's image of the object, or 0 where no image is (docs/verifier.md, "Kernel BTF").
    /// </summary>
    public bool ProbeMem { get; internal set; }

    /// <summary>For a load from the stack: true when some path may read bytes never written.</summary>
    public bool MayReadUninitStack { get; internal set; }
}

/// <summary>The verdict, the log, and the facts the JIT uses.</summary>
public sealed class VerifierResult
{
    internal VerifierResult(bool accepted, string log, string? error, int errorInsn, InsnFacts[] facts, int processed, int[] stackDepths, bool uninit)
    {
        Accepted = accepted;
        Log = log;
        Error = error;
        ErrorInsn = errorInsn;
        Facts = facts;
        InsnsProcessed = processed;
        StackDepths = stackDepths;
        MayReadUninitStack = uninit;
    }

    /// <summary>True when the program is safe to run.</summary>
    public bool Accepted { get; }

    /// <summary>The log in the kernel's wording (level per <see cref="VerifierOptions.LogLevel"/>).</summary>
    public string Log { get; }

    /// <summary>The error message (the kernel's last log line), or null when accepted.</summary>
    public string? Error { get; }

    /// <summary>The instruction the error concerns, or -1.</summary>
    public int ErrorInsn { get; }

    /// <summary>Per-instruction facts, indexed by slot (the second slot of an ld_imm64 has default facts).</summary>
    public IReadOnlyList<InsnFacts> Facts { get; }

    /// <summary>Instructions processed over all paths (the kernel's "processed N insns").</summary>
    public int InsnsProcessed { get; }

    /// <summary>Stack bytes each subprogram uses, by subprogram index.</summary>
    public IReadOnlyList<int> StackDepths { get; }

    /// <summary>True when some path may read stack bytes never written: the emitter must zero the frame.</summary>
    public bool MayReadUninitStack { get; }

    /// <summary>
    /// True when some path may turn an address into plain data, as Linux lets root: a pointer stored into a map
    /// value or ring buffer memory, an atomic with a pointer operand, a spilled pointer read by a helper or
    /// partly overwritten or read through a variable offset. Safe (the data is never dereferenced), but the
    /// value differs between engines and runs, and so may anything computed from it.
    /// </summary>
    public bool MayExposeAddresses { get; internal init; }

    /// <summary>The figures the kernel's log level 4 prints (print_verification_stats).</summary>
    public VerifierStats Stats { get; internal init; } = new(TimeSpan.Zero, 0, 0, 0, 0);

    /// <summary>Throws <see cref="BpfVerifierException"/> when rejected.</summary>
    public VerifierResult ThrowIfRejected() => Accepted ? this : throw new BpfVerifierException(this);
}

/// <summary>
/// The statistics of one verification, as the kernel's print_verification_stats reports them (log level 4):
/// <c>verification time N usec</c>, then <c>processed N insns (limit 1000000) max_states_per_insn M
/// total_states T peak_states P mark_read 0</c>.
/// </summary>
/// <param name="VerificationTime">Wall time of the verification.</param>
/// <param name="InsnsProcessed">Instructions processed over all paths (capped one past the complexity limit).</param>
/// <param name="MaxStatesPerInsn">The most checkpoints kept at one instruction.</param>
/// <param name="TotalStates">Checkpoints made.</param>
/// <param name="PeakStates">The most checkpoints alive at once.</param>
public sealed record VerifierStats(TimeSpan VerificationTime, int InsnsProcessed, int MaxStatesPerInsn, int TotalStates, int PeakStates);

/// <summary>A program the verifier rejected; carries the whole log.</summary>
public sealed class BpfVerifierException : BpfException, Runtime.Loading.IProgramRejection
{
    /// <summary>Creates the exception from a rejected result.</summary>
    public BpfVerifierException(VerifierResult result)
        : base($"verifier rejected the program at insn {result.ErrorInsn}: {result.Error}")
    {
        Result = result;
    }

    /// <summary>The rejected result.</summary>
    public VerifierResult Result { get; }

    /// <summary>The verifier log.</summary>
    public string Log => Result.Log;

    /// <summary>The slot of the rejected instruction (<see cref="VerifierResult.ErrorInsn"/>).</summary>
    public int InstructionIndex => Result.ErrorInsn;

    /// <summary>The verifier's one-line error (<see cref="VerifierResult.Error"/>).</summary>
    public string Reason => Result.Error ?? "";
}
