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
    readonly BpfEntry _entry;
    readonly ProgramShape _shape;
    readonly Helper?[] _helpers;
    byte[]? _assembly;
    EmitRecord? _record;

    internal CompiledProgram(ProgramShape shape, Helper?[] helpers, JitOptions options, BpfEntry entry)
    {
        _shape = shape;
        _helpers = helpers;
        Options = options;
        _entry = entry;
    }

    /// <summary>The compiled program as a delegate (r1, r2 in; r0 out).</summary>
    public BpfEntry Entry => _entry;

    /// <summary>Runs the program with r1 and r2 set and returns r0.</summary>
    public ulong Run(ulong r1 = 0, ulong r2 = 0) => _entry(r1, r2);

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
        return CSharpDump.Decompile(_assembly!);
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
