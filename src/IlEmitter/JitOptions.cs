namespace BpfJit.IlEmitter;

/// <summary>Options of <see cref="JitCompiler.Compile"/>.</summary>
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
    /// Call the compiled method once, in a probe mode that returns at once, before
    /// <see cref="JitCompiler.Compile"/> returns (default true). RyuJIT compiles a DynamicMethod at
    /// its first call; probing makes that happen inside <c>Compile</c>, so IL that RyuJIT rejects
    /// surfaces there as a <see cref="BpfCompileException"/> and never as an InvalidProgramException
    /// at a user's first call. It costs one field test per call.
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
}
