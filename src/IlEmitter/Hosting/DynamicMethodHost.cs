using System.Reflection.Emit;
using BpfJit.IlEmitter.Emit;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Hosting;

/// <summary>
/// Hosts an emitted program in a <see cref="DynamicMethod"/> and binds it as a <see cref="BpfEntry"/>
/// closed over a <see cref="JitClosure"/> (the cheapest delegate call on .NET 10). With
/// <see cref="JitOptions.ProbeOnCompile"/> the method skips visibility checks, which makes the runtime
/// compile it when the delegate is created (measured: <c>CreateDelegate</c> then takes RyuJIT's time and
/// the first call does not), so RyuJIT compiles it here and any IL it rejects becomes a
/// <see cref="BpfCompileException"/>, with no probe code in the method.
/// </summary>
internal static class DynamicMethodHost
{
    public static BpfEntry Create(ProgramShape shape, Helper?[] helpers, JitOptions options, JitClosure closure, string name, out EmitRecord record) =>
        Bind(Emit(shape, helpers, options, name, out record), closure);

    /// <summary>
    /// Emits the program into a new <see cref="DynamicMethod"/> named <paramref name="name"/> (the kernel's JIT image
    /// name, what perf's map and profilers show) without compiling it. With
    /// <paramref name="compileOnBind"/> it skips visibility checks, so <see cref="Bind"/> is where RyuJIT runs.
    /// </summary>
    public static DynamicMethod Emit(ProgramShape shape, Helper?[] helpers, JitOptions options, string name, out EmitRecord record, bool compileOnBind = false)
    {
        // Anonymously hosted: a DynamicMethod owned by a module inherits that module's debuggable
        // attribute, so a Debug build of this assembly would get unoptimised (MinOpts) code.
        var method = new DynamicMethod(name, typeof(ulong), ProgramEmitter.ParameterTypes, compileOnBind || SkipVisibility(helpers, options))
        {
            InitLocals = false,
        };
        record = ProgramEmitter.Emit(method.GetILGenerator(64 + shape.Program.Length * 24), shape, helpers, options);
        return method;
    }

    /// <summary>Binds an emitted program as a delegate closed over <paramref name="closure"/> (RyuJIT compiles it here when visibility checks are skipped).</summary>
    public static BpfEntry Bind(DynamicMethod method, JitClosure closure)
    {
        try
        {
            return method.CreateDelegate<BpfEntry>(closure);
        }
        catch (InvalidProgramException e)
        {
            throw new BpfCompileException(-1, "", $"RyuJIT rejected the emitted IL ({e.Message}); 'bpfjit dump --il' shows it", e);
        }
    }

    /// <summary>
    /// Skipping visibility checks makes the runtime compile the method when its delegate is created: wanted
    /// with <see cref="JitOptions.ProbeOnCompile"/>, and needed anyway when a helper is not public.
    /// </summary>
    static bool SkipVisibility(Helper?[] helpers, JitOptions options) =>
        options.ProbeOnCompile || helpers.Any(h => h != null && !IsPublic(h.Method));

    /// <summary>
    /// Hosts the callback method of a BPF_PSEUDO_FUNC target (<paramref name="shape"/> entered at its
    /// subprogram) as a <see cref="BpfCallback"/> named <paramref name="name"/>: r1-r5 in, r0 out, a fresh stack of its own.
    /// </summary>
    public static BpfCallback CreateCallback(ProgramShape shape, Helper?[] helpers, JitOptions options, JitClosure closure, string name)
    {
        var method = new DynamicMethod(name, typeof(ulong), ProgramEmitter.CallbackParameterTypes, SkipVisibility(helpers, options))
        {
            InitLocals = false,
        };
        ProgramEmitter.Emit(method.GetILGenerator(64 + shape.Program.Length * 24), shape, helpers, options);
        try
        {
            return method.CreateDelegate<BpfCallback>(closure);
        }
        catch (InvalidProgramException e)
        {
            throw new BpfCompileException(shape.Entry, "", $"RyuJIT rejected the emitted IL of the callback at slot {shape.Entry} ({e.Message})", e);
        }
    }

    static bool IsPublic(System.Reflection.MethodInfo m)
    {
        if (!m.IsPublic) return false;
        for (var t = m.DeclaringType; t != null; t = t.DeclaringType)
            if (!(t.IsPublic || t.IsNestedPublic)) return false;
        return true;
    }
}
