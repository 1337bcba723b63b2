using BpfJit.Frontend;
using BpfJit.IlEmitter.Emit;
using BpfJit.IlEmitter.Hosting;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter;

/// <summary>
/// Compiles eBPF programs to .NET IL: each program becomes one DynamicMethod that RyuJIT turns into
/// machine code, with r0-r10 as <c>ulong</c> locals and the stack in one fixed-size struct local.
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
    public static CompiledProgram Compile(Instruction[] program, HelperTable helpers, JitOptions? options = null) =>
        Compile(program, helpers, options, null);

    /// <summary>
    /// Compiles a program a verifier accepted, specialised with the <paramref name="facts"/> it proved
    /// (docs/jit.md, "Specialisation from verifier facts"): dead code left out, division checks dropped
    /// where the divisor is non-zero, context loads folded, map lookups bound to their map, the stack
    /// sized to the program and not zeroed when it is never read before written. Null facts: as
    /// <see cref="Compile(Instruction[], HelperTable, JitOptions?)"/>. Facts computed for another program
    /// raise an <see cref="ArgumentException"/>.
    /// </summary>
    public static CompiledProgram Compile(Instruction[] program, HelperTable helpers, JitOptions? options, ProgramFacts? facts) =>
        Compile(program, helpers, options, facts, null);

    /// <summary>
    /// As <see cref="Compile(Instruction[], HelperTable, JitOptions?, ProgramFacts?)"/>, the DynamicMethod named
    /// <paramref name="symbol"/> (see <see cref="CompiledProgram.Symbol"/>); null: <c>bpf_prog_&lt;tag&gt;</c>, the tag of
    /// <paramref name="program"/> as given (<see cref="ProgramSymbol"/>). A program whose map references are already bound
    /// has its tag from before binding: pass the symbol (<c>SkLookupProgram</c> does).
    /// </summary>
    public static CompiledProgram Compile(Instruction[] program, HelperTable helpers, JitOptions? options, ProgramFacts? facts, string? symbol)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(helpers);
        if (facts != null && !facts.Describes(program))
            throw new ArgumentException($"the facts describe another program ({facts.Count} slots, this one has {program.Length})", nameof(facts));
        options ??= JitOptions.Default;
        symbol ??= ProgramSymbol.Of(program, null);
        var slots = (Instruction[])program.Clone();
        var resolved = new Helper?[slots.Length];
        var funcs = new List<(int Slot, int Target)>();
        ProgramChecks.CheckRunnable(slots, helpers, (i, h) => resolved[i] = h, (slot, target) => funcs.Add((slot, target)));
        if (facts == null && !options.Checked) KernelPointers.Check(slots, resolved);
        var closure = new JitClosure(helpers) { Program = slots, CheckedProgram = options.Checked ? slots : null };
        BindCallbacks(slots, funcs, resolved, options, closure, facts, symbol);
        var shape = ProgramShape.Analyse(slots, 0, resolved, facts, options.Optimize, options.Checked);
        closure.BindMaps(shape.ClosureMaps);
        if (options.Tiered && !options.Checked && funcs.Count == 0)
            return CompileTiered(slots, helpers, shape, resolved, options, closure, symbol);
        var entry = DynamicMethodHost.Create(shape, resolved, options, closure, symbol, out _);
        return new CompiledProgram(shape, resolved, options, entry, symbol);
    }

    /// <summary>
    /// <see cref="JitOptions.Tiered"/>: the IL is emitted here (so the emitter's own errors still surface
    /// in Compile), the program starts on the interpreter, and a <see cref="TierUpQueue"/> worker has RyuJIT
    /// compile the method and switches the program to it (or the queue sheds the compile when full).
    /// </summary>
    static CompiledProgram CompileTiered(Instruction[] program, HelperTable helpers, ProgramShape shape, Helper?[] resolved, JitOptions options, JitClosure closure, string symbol)
    {
        var method = DynamicMethodHost.Emit(shape, resolved, options, symbol, out _, compileOnBind: true);
        var compiled = new CompiledProgram(shape, resolved, options, InterpreterEngine.Instance.Prepare(program, helpers, shape.Facts), symbol, tiered: true);
        if (options.TierUpDelay == null)
        {
            TierUpQueue.Enqueue(compiled, method, closure);
            return compiled;
        }
        // Tests hold this compile back: it waits on its own thread-pool item, never in the queue's way.
        ThreadPool.UnsafeQueueUserWorkItem(static state =>
        {
            var (compiled, method, closure, delay) = state;
            try
            {
                delay?.GetAwaiter().GetResult();
                compiled.TierUp(DynamicMethodHost.Bind(method, closure));
            }
            catch (Exception e)
            {
                compiled.TierUpFailed(e);
            }
        }, (compiled, method, closure, options.TierUpDelay), preferLocal: false);
        return compiled;
    }

    /// <summary>
    /// BPF_PSEUDO_FUNC (callbacks of bpf_loop, bpf_for_each_map_elem): each distinct target gets a method
    /// of its own, entered at the target with r1-r5 as arguments and a fresh stack (docs/runtime.md,
    /// section 5). Its handle from <see cref="Callbacks.Register"/> replaces the ld_imm64's operand, in the
    /// program and in every callback (a callback may pass another one on). Handles are registered
    /// before the methods exist, through a forwarder, so callbacks can refer to each other. Each method is
    /// named after the program and the callback's subprogram index (<see cref="ProgramSymbol.Subprogram"/>).
    /// </summary>
    // A callback is compiled without specialisation (its entry state is not the main program's), but with the
    // program's facts for the runtime guards: a variable-offset access in it is guarded as in the main program.
    static void BindCallbacks(Instruction[] slots, List<(int Slot, int Target)> funcs, Helper?[] resolved, JitOptions options, JitClosure closure,
        ProgramFacts? facts, string symbol)
    {
        if (funcs.Count == 0) return;
        var starts = SubprogramStarts(slots);
        var forwarders = new Dictionary<int, CallbackForwarder>();
        foreach (var (slot, target) in funcs)
        {
            if (!forwarders.TryGetValue(target, out var forwarder))
            {
                forwarder = new CallbackForwarder();
                // The table holds the delegate weakly: the forwarder (kept alive by the closure) holds it strongly.
                forwarder.Delegate = forwarder.Invoke;
                forwarder.Handle = Callbacks.Register(forwarder.Delegate);
                forwarders[target] = forwarder;
                closure.KeepAlive.Add(forwarder);
            }
            // r = handle   (a plain ld_imm64 from here on)
            slots[slot] = slots[slot] with { Src = (byte)Ld64Source.Imm, Imm = (int)(uint)forwarder.Handle };
            slots[slot + 1] = slots[slot + 1] with { Imm = (int)(uint)(forwarder.Handle >> 32) };
        }
        foreach (var (target, forwarder) in forwarders)
            forwarder.Target = DynamicMethodHost.CreateCallback(ProgramShape.Analyse(slots, target, resolved, null, options.Optimize, options.Checked, facts), resolved, options, closure,
                ProgramSymbol.Subprogram(symbol, starts.GetViewBetween(0, target).Count - 1));
    }

    /// <summary>Where subprograms start (the verifier's func#N order): slot 0, and every bpf-to-bpf call's and BPF_PSEUDO_FUNC's target.</summary>
    static SortedSet<int> SubprogramStarts(Instruction[] slots)
    {
        var starts = new SortedSet<int> { 0 };
        for (int i = 0; i < slots.Length; i++)
        {
            var ins = slots[i];
            if ((ins.IsCall && ins.Src == (byte)CallKind.Local) || (ins.IsLdImm64 && ins.Src == (byte)Ld64Source.Func))
                starts.Add(i + 1 + ins.Imm);
            if (ins.IsLdImm64) i++;
        }
        return starts;
    }

    /// <summary>The delegate a callback handle resolves to; it calls the compiled callback method.</summary>
    internal sealed class CallbackForwarder
    {
        public ulong Handle;
        public BpfCallback? Delegate;
        public BpfCallback? Target;

        public ulong Invoke(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Target!(r1, r2, r3, r4, r5);
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
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers) => Guard(program, Options, JitCompiler.Compile(program, helpers, Options).Entry);

    /// <inheritdoc />
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers, ProgramFacts? facts) => Guard(program, Options, JitCompiler.Compile(program, helpers, Options, facts).Entry);

    /// <inheritdoc />
    public BpfEntry Prepare(Instruction[] program, HelperTable helpers, ProgramFacts? facts, string? symbol) =>
        Guard(program, Options, JitCompiler.Compile(program, helpers, Options, facts, symbol).Entry);

    /// <summary>
    /// Checked mode, a program that may take a bpf_spin_lock: its runs end by checking it let go
    /// (<see cref="KernelHelpers.FaultIfLockHeldAtExit"/>), as the interpreter's do. Verified code is never wrapped.
    /// </summary>
    static BpfEntry Guard(Instruction[] program, JitOptions options, BpfEntry entry)
    {
        if (!options.Checked || !KernelHelpers.MayTakeLock(program)) return entry;
        return (r1, r2) =>
        {
            ulong r0 = entry(r1, r2);
            KernelHelpers.FaultIfLockHeldAtExit();
            return r0;
        };
    }

    /// <inheritdoc />
    /// <remarks>
    /// The program's own method holds the handler (docs/jit.md, "Fault containment at the entry"). Null, so that the
    /// caller wraps the plain entry: with <see cref="JitOptions.Tiered"/> (the program starts on the interpreter), and in
    /// checked mode for a program that may take a bpf_spin_lock (its entry checks the lock at exit).
    /// </remarks>
    public BpfEntry? PrepareContained(Instruction[] program, HelperTable helpers, ProgramFacts? facts, string? symbol)
    {
        if (Options.Tiered || (Options.Checked && KernelHelpers.MayTakeLock(program))) return null;
        return JitCompiler.Compile(program, helpers, Options with { ContainFaults = true }, facts, symbol).Entry;
    }
}
