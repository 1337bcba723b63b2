using BpfJit.Frontend;
using BpfJit.IlEmitter.Dump;
using BpfJit.IlEmitter.Emit;
using BpfJit.IlEmitter.Hosting;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter;

/// <summary>
/// A program compiled to IL and bound as a delegate: run it with <see cref="Run"/> or through
/// <see cref="Entry"/>. It can also show what was emitted — as an IL listing interleaved with the
/// eBPF instructions (<see cref="GetIlListing"/>), as decompiled C# (<see cref="GetCSharp"/>) or as
/// an assembly (<see cref="SaveAssembly(string)"/>); those re-emit the program into a persisted
/// assembly through the same emitter that produced the running code.
/// </summary>
public sealed class CompiledProgram
{
    BpfEntry _entry;                    // the code that runs now: the JIT's, or the interpreter until a tiered compile ends
    readonly BpfEntry? _forwarder;      // tiered: handed out before the switch, calls whatever _entry is
    readonly TaskCompletionSource _jitted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly ProgramShape _shape;
    readonly Helper?[] _helpers;
    byte[]? _assembly;
    EmitRecord? _record;

    internal CompiledProgram(ProgramShape shape, Helper?[] helpers, JitOptions options, BpfEntry entry, string symbol, bool tiered = false)
    {
        Symbol = symbol;
        _shape = shape;
        _helpers = helpers;
        Options = options;
        _entry = entry;
        if (tiered) _forwarder = RunCurrent;
        else _jitted.SetResult();
    }

    /// <summary>
    /// The name of the program's DynamicMethod, as the kernel names a JIT image (<see cref="ProgramSymbol"/>):
    /// what perf's map, dotnet-trace and stack traces show for the code. Callbacks compiled as methods of
    /// their own are named after it (<see cref="ProgramSymbol.Subprogram"/>).
    /// </summary>
    public string Symbol { get; }

    /// <summary>
    /// The program as a delegate (r1, r2 in; r0 out): the compiled method's own delegate once
    /// <see cref="IsJitted"/>; before that (<see cref="JitOptions.Tiered"/>) a delegate that runs
    /// whichever code is current, so it speeds up by itself when the compile ends.
    /// </summary>
    public BpfEntry Entry => _forwarder == null || IsJitted ? Volatile.Read(ref _entry) : _forwarder;

    /// <summary>Runs the program with r1 and r2 set and returns r0.</summary>
    public ulong Run(ulong r1 = 0, ulong r2 = 0) => Volatile.Read(ref _entry)(r1, r2);

    ulong RunCurrent(ulong r1, ulong r2) => Volatile.Read(ref _entry)(r1, r2);

    /// <summary>
    /// True once runs execute RyuJIT's code: at once without <see cref="JitOptions.Tiered"/>; with it,
    /// when the background compile has ended (runs until then use the interpreter).
    /// </summary>
    public bool IsJitted => _jitted.Task.IsCompletedSuccessfully;

    /// <summary>
    /// Completes when runs execute RyuJIT's code (already complete without <see cref="JitOptions.Tiered"/>).
    /// Faults with a <see cref="BpfCompileException"/> if RyuJIT rejected the emitted IL; the program
    /// then keeps running, correctly, on the interpreter.
    /// </summary>
    public Task JitCompleted => _jitted.Task;

    internal void TierUp(BpfEntry jitted)
    {
        Volatile.Write(ref _entry, jitted);
        _jitted.SetResult();
    }

    internal void TierUpFailed(Exception error) =>
        _jitted.SetException(error is BpfException ? error : new BpfCompileException(-1, "", $"background compile failed: {error.Message}", error));

    /// <summary>The program's instruction slots (a copy taken at compile time).</summary>
    public ReadOnlySpan<Instruction> Program => _shape.Program;

    /// <summary>The options it was compiled with.</summary>
    public JitOptions Options { get; }

    /// <summary>Stack frames reserved on each run (0 when the program never reads r10).</summary>
    public int StackFrames => _shape.UsesStack ? _shape.Frames : 0;

    /// <summary>Bytes of one stack frame: 512, or less when verifier facts give the program's stack depth.</summary>
    public int StackFrameSize => _shape.FrameSize;

    /// <summary>True when each run starts with a zeroed stack (the program uses it, and no fact proved zeroing unnecessary).</summary>
    public bool ZeroesStack => _shape.UsesStack && _shape.ZeroesStack(Options);

    /// <summary>The verifier facts the program was specialised with, or null.</summary>
    public ProgramFacts? Facts => _shape.Facts;

    /// <summary>True when bpf-to-bpf calls check the frame limit at run time (recursion, or a static depth above 8).</summary>
    public bool ChecksCallDepth => _shape.HasLocalCalls && _shape.NeedsDepthCheck;

    /// <summary>The bytes of a standalone assembly holding the program as <c>BpfJit.Dump.BpfProgram.Run(JitClosure, ulong, ulong)</c>.</summary>
    public byte[] GetAssemblyBytes()
    {
        EnsureAssembly();
        return (byte[])_assembly!.Clone();
    }

    /// <summary>Writes <see cref="GetAssemblyBytes"/> to <paramref name="path"/>.</summary>
    public void SaveAssembly(string path) => File.WriteAllBytes(path, GetAssemblyBytes());

    /// <summary>Writes <see cref="GetAssemblyBytes"/> to <paramref name="stream"/>.</summary>
    public void SaveAssembly(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        EnsureAssembly();
        stream.Write(_assembly!);
    }

    /// <summary>
    /// The IL of the saved assembly (read back with Mono.Cecil), each block preceded by the eBPF
    /// instruction it came from: <c>; 5: r0 = *(u32 *)(r1 + 8)</c>.
    /// </summary>
    public string GetIlListing()
    {
        EnsureAssembly();
        return IlListing.Format(_assembly!, _shape, _record!);
    }

    /// <summary>The saved method decompiled to C# by ICSharpCode.Decompiler.</summary>
    public string GetCSharp()
    {
        EnsureAssembly();
        return CSharpDump.Decompile(_assembly!, _record!.LocalNames);
    }

    /// <summary>
    /// The program emitted again, through the same emitter, as the static method of a new collectible assembly,
    /// uncompiled: <c>dump --native</c> reads the runtime's IL-to-native map of it (<see cref="NativeTwin"/>).
    /// </summary>
    public NativeTwin EmitNativeTwin()
    {
        var method = CollectibleAssemblyHost.Build(_shape, _helpers, Options, out var record);
        return new NativeTwin(method, record.Markers);
    }

    /// <summary>What <see cref="PersistedAssemblyHost"/> needs to emit this program again, under <paramref name="methodName"/>.</summary>
    internal PersistedAssemblyHost.Entry ToPersisted(string methodName) => new(methodName, _shape, _helpers, Options);

    void EnsureAssembly()
    {
        if (_assembly != null) return;
        _assembly = PersistedAssemblyHost.Build(_shape, _helpers, Options, out var record);
        _record = record;
    }
}
