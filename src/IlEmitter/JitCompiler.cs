using BpfJit.Frontend;
using BpfJit.IlEmitter.Emit;
using BpfJit.IlEmitter.Hosting;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter;

/// <summary>
/// Compiles eBPF programs to .NET IL: each program becomes one DynamicMethod that RyuJIT turns into
/// machine code, with r0-r10 as <c>ulong</c> locals and the stack in one <c>localloc</c> block.
/// It accepts exactly what the interpreter accepts (<see cref="ProgramChecks.CheckRunnable"/>) and
/// computes the same results (the interpreter is the reference semantics).
/// </summary>
public static class JitCompiler
{
    /// <summary>
    /// Compiles <paramref name="program"/> against <paramref name="helpers"/>. Throws
    /// <see cref="BpfRuntimeException"/> for what no engine runs (unknown helper, jump out of range)
    /// and <see cref="BpfCompileException"/> for what the emitter cannot compile.
    /// </summary>
    public static CompiledProgram Compile(Instruction[] program, HelperTable helpers, JitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(helpers);
        options ??= JitOptions.Default;
        var slots = (Instruction[])program.Clone();
        var resolved = new Helper?[slots.Length];
        ProgramChecks.CheckRunnable(slots, helpers, (i, h) => resolved[i] = h);
        var shape = ProgramShape.Analyse(slots);
        var entry = DynamicMethodHost.Create(shape, resolved, options, new JitClosure(helpers), out _);
        return new CompiledProgram(shape, resolved, options, entry);
    }
}

/// <summary>The JIT as an <see cref="IBpfEngine"/>, named <c>jit</c>.</summary>
public sealed class JitEngine : IBpfEngine
{
    /// <summary>The shared instance (default options).</summary>
    public static JitEngine Instance { get; } = new();

    /// <summary>Creates an engine compiling with <paramref name="options"/> (defaults when null).</summary>
    public JitEngine(JitOptions? options = null) => Options = options ?? JitOptions.Default;

    /// <summary>The options programs are compiled with.</summary>
    public JitOptions Options { get; }

    /// <inheritdoc />
    public string Name => "jit";

    /// <inheritdoc />
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers) => JitCompiler.Compile(program, helpers, Options).Entry;
}
