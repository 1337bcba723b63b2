namespace BpfJit.IlEmitter;

/// <summary>Options of <see cref="JitCompiler.Compile(BpfJit.Frontend.Instruction[], BpfJit.Runtime.HelperTable, JitOptions?)"/>.</summary>
public sealed record JitOptions
{
    /// <summary>The defaults: the stack is zeroed on entry.</summary>
    public static JitOptions Default { get; } = new();

    /// <summary>
    /// Zero the eBPF stack on entry (default true). The method runs with <c>InitLocals</c> off, so
    /// without this the stack holds whatever the host stack held; a verifier that proves the program
    /// never reads stack it did not write turns it off.
    /// </summary>
    public bool ZeroStack { get; init; } = true;

    /// <summary>
    /// Apply the exact eBPF-level optimisations (default true): register liveness (dead results, prologue),
    /// folded add chains, small loops unrolled twice (docs/jit.md, "Optimisations"). Off, each slot is
    /// emitted as written; for comparisons and for tracking down an emitter bug.
    /// </summary>
    public bool Optimize { get; init; } = true;

    /// <summary>
    /// Have RyuJIT compile the method before
    /// <see cref="JitCompiler.Compile(BpfJit.Frontend.Instruction[], BpfJit.Runtime.HelperTable, JitOptions?)"/> returns (default true),
    /// so IL that RyuJIT rejects surfaces there as a <see cref="BpfCompileException"/> and never as an
    /// InvalidProgramException at a user's first call. The method is created without visibility checks,
    /// which makes the runtime compile it when its delegate is bound; the method itself holds no probe code.
    /// When false, RyuJIT compiles it at the first call.
    /// </summary>
    public bool ProbeOnCompile { get; init; } = true;

    /// <summary>
    /// Checked mode (default false): a runtime check before every load, store and atomic that the
    /// accessed bytes lie inside the context block, the program's stack, a live map value, a socket
    /// view or a reserved ring-buffer record, raising
    /// <see cref="Runtime.Checked.BpfCheckedModeException"/> before the access otherwise. A soundness
    /// oracle for tests and fuzzing (docs/reliability.md), many times slower than the default.
    /// </summary>
    public bool Checked { get; init; }

    /// <summary>
    /// Tiered start (default false): <see cref="JitCompiler.Compile(BpfJit.Frontend.Instruction[], BpfJit.Runtime.HelperTable, JitOptions?)"/>
    /// returns as soon as the IL is emitted, and the program runs on the interpreter (the reference
    /// semantics, same results) while RyuJIT compiles the method on a thread-pool thread; then the
    /// program switches to the compiled code (<see cref="CompiledProgram.JitCompleted"/>). Errors in the
    /// program itself still surface in <c>Compile</c>; only RyuJIT's own compile moves off the caller.
    /// A program that passes callbacks (BPF_PSEUDO_FUNC) or is compiled in <see cref="Checked"/> mode
    /// is compiled before <c>Compile</c> returns, as without this option. The entry taken before the
    /// switch (<see cref="CompiledProgram.Entry"/>) forwards to whichever code is current, one extra
    /// delegate call per run; take it after <see cref="CompiledProgram.JitCompleted"/> for the direct one.
    /// </summary>
    public bool Tiered { get; init; }

    /// <summary>Tests only: the background compile of a <see cref="Tiered"/> program waits for this task first.</summary>
    internal Task? TierUpDelay { get; init; }

    /// <summary>
    /// The program's method contains its faults (<see cref="Runtime.IBpfEngine.PrepareContained"/>): its body is one protected
    /// region whose filter takes what <see cref="Runtime.RunFaults.IsFault"/> names, records it and returns
    /// <see cref="Runtime.RunFaults.Sentinel"/>. Set by <see cref="JitEngine.PrepareContained"/>; callbacks never contain.
    /// </summary>
    internal bool ContainFaults { get; init; }
}
