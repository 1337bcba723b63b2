using System.Runtime.InteropServices;
using System.Text;
using BenchmarkDotNet.Attributes;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Perf;

/// <summary>Where ../shared/bench is, found from the working directory or the assembly.</summary>
static class BenchFiles
{
    public static string Find(string name)
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared", "bench", name + ".data");
                if (File.Exists(candidate)) return candidate;
                candidate = Path.Combine(dir.FullName, "..", "shared", "bench", name + ".data");
                if (File.Exists(candidate)) return Path.GetFullPath(candidate);
            }
        }
        throw new FileNotFoundException($"shared/bench/{name}.data not found above {Environment.CurrentDirectory}");
    }
}

/// <summary>
/// The JIT against the interpreter on the five ../shared/bench programs (plus a bpf-to-bpf call
/// loop), both called through their public API: the interpreter through its <see cref="BpfEntry"/>,
/// the JIT through <see cref="CompiledProgram.Run"/>. Ratio is interpreter time / JIT time's inverse
/// (BenchmarkDotNet's Ratio column, baseline = interpreter).
/// </summary>
[MemoryDiagnoser]
public unsafe class JitVsInterpreterBenchmarks
{
    /// <summary>The benchmark program (a file in ../shared/bench, or <c>local_call_loop</c>).</summary>
    [Params("straight", "loop_alu", "stack_loop", "helper_loop", "nocall_loop", "local_call_loop")]
    public string Program = "";

    /// <summary>
    /// helper_loop with the helper replaced by a bpf-to-bpf call (r0 = r1 &amp; 1 in a subprogram):
    /// measures the cost of the in-method frame save/restore of local calls.
    /// </summary>
    public const string LocalCallLoop = """
        mov %r6, 100
        mov %r7, 0
        loop:
        mov %r1, %r6
        mov %r2, 2
        call local parity
        add %r7, %r0
        sub %r6, 1
        jne %r6, 0, loop
        mov %r0, %r7
        exit
        parity:
        mov %r0, %r1
        and %r0, 1
        exit
        """;

    BpfEntry _interpreter = null!;
    CompiledProgram _jit = null!;
    BpfEntry _jitEntry = null!;
    byte* _memory;
    ulong _length;
    ulong _expected;

    [GlobalSetup]
    public void Setup()
    {
        Instruction[] program;
        byte[] memory = [];
        if (Program == "local_call_loop")
        {
            program = Assembler.Assemble(LocalCallLoop);
            _expected = 50;
        }
        else
        {
            var test = ConformanceFile.Load(BenchFiles.Find(Program));
            program = test.Program!;
            memory = test.Memory;
            _expected = test.ExpectedResult!.Value;
        }
        var helpers = HelperTable.Bench();
        _interpreter = InterpreterEngine.Instance.Prepare(program, helpers);
        _jit = JitCompiler.Compile(program, helpers);
        _jitEntry = _jit.Entry;
        _length = (ulong)memory.Length;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(memory.Length, 8), 16);
        memory.CopyTo(new Span<byte>(_memory, memory.Length));
        // The interpreter touches only registered memory.
        BpfJit.Runtime.Checked.MemoryRegions.Register((ulong)_memory, Math.Max(memory.Length, 8), BpfJit.Runtime.Checked.MemoryRegionKind.Context);
        if (Interpreter() != _expected || Jit() != _expected || JitEntry() != _expected)
            throw new InvalidOperationException($"{Program}: wrong result");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        BpfJit.Runtime.Checked.MemoryRegions.Unregister((ulong)_memory);
        NativeMemory.AlignedFree(_memory);
    }

    [Benchmark(Baseline = true)]
    public ulong Interpreter() => _interpreter((ulong)_memory, _length);

    [Benchmark]
    public ulong Jit() => _jit.Run((ulong)_memory, _length);

    [Benchmark]
    public ulong JitEntry() => _jitEntry((ulong)_memory, _length);
}

/// <summary>Compile latency: emit IL, create the DynamicMethod, RyuJIT-compile it and run it once.</summary>
[MemoryDiagnoser]
public unsafe class JitCompileLatencyBenchmarks
{
    Instruction[] _program = [];
    readonly HelperTable _helpers = HelperTable.Bench();
    byte* _memory;

    /// <summary>
    /// A 100-slot program of the kind the JIT meets: loads from the context, ALU chains in 32 and
    /// 64 bits, stack spills and fills, forward conditional jumps, a helper call.
    /// </summary>
    public static string HundredInstructions()
    {
        var sb = new StringBuilder();
        sb.AppendLine("mov %r6, %r1");
        for (int i = 0; i < 11; i++)
        {
            sb.AppendLine($"ldxw %r2, [%r6+{(i % 4) * 4}]");
            sb.AppendLine($"add %r2, {i * 7 + 1}");
            sb.AppendLine($"xor32 %r2, 0x{i * 0x1111:x}");
            sb.AppendLine($"lsh %r2, {i % 5}");
            sb.AppendLine($"stxdw [%r10-{8 * (i + 1)}], %r2");
            sb.AppendLine($"ldxdw %r3, [%r10-{8 * (i + 1)}]");
            sb.AppendLine($"jgt %r3, {1000 + i}, skip{i}");
            sb.AppendLine("add %r0, %r3");
            sb.AppendLine($"skip{i}:");
            sb.AppendLine("mul %r0, 3");
        }
        sb.AppendLine("mov %r1, %r0");
        sb.AppendLine("call 2");
        sb.AppendLine("and %r0, 0xffff");
        sb.AppendLine("exit");
        return sb.ToString();
    }

    [GlobalSetup]
    public void Setup()
    {
        _program = Assembler.Assemble(HundredInstructions());
        if (_program.Length is < 95 or > 105) throw new InvalidOperationException($"program has {_program.Length} slots");
        _memory = (byte*)NativeMemory.AlignedAlloc(64, 16);
        new Span<byte>(_memory, 64).Fill(0x5a);
    }

    [GlobalCleanup]
    public void Cleanup() => NativeMemory.AlignedFree(_memory);

    /// <summary>JitCompiler.Compile (emit + DynamicMethod + probe call, which is RyuJIT's compile) + one Run.</summary>
    [Benchmark]
    public ulong EmitAndFirstCall() => JitCompiler.Compile(_program, _helpers).Run((ulong)_memory, 64);

    /// <summary>The interpreter's preparation + one run, for scale.</summary>
    [Benchmark(Baseline = true)]
    public ulong InterpreterPrepareAndRun() => InterpreterEngine.Instance.Prepare(_program, _helpers)((ulong)_memory, 64);
}

/// <summary>
/// Compile latency with and without <see cref="JitOptions.Tiered"/>, on the 104-slot program of
/// <see cref="JitCompileLatencyBenchmarks"/>, each invocation timed on its own (one invocation per
/// iteration). After each iteration, outside the timing, the tiered program's background compile is
/// waited for, so compiles never pile up on the thread pool and each measurement starts idle.
/// <c>TieredUntilJitted</c> is the whole way to RyuJIT's code: compile, first run, the background
/// compile's end.
/// </summary>
[SimpleJob(BenchmarkDotNet.Engines.RunStrategy.Monitoring, launchCount: 1, warmupCount: 30, iterationCount: 200, invocationCount: 1)]
public unsafe class JitTieredLatencyBenchmarks
{
    Instruction[] _program = [];
    readonly HelperTable _helpers = HelperTable.Bench();
    readonly JitOptions _tiered = new() { Tiered = true };
    CompiledProgram? _last;
    byte* _memory;

    [GlobalSetup]
    public void Setup()
    {
        _program = Assembler.Assemble(JitCompileLatencyBenchmarks.HundredInstructions());
        _memory = (byte*)NativeMemory.AlignedAlloc(64, 16);
        new Span<byte>(_memory, 64).Fill(0x5a);
        ulong direct = JitCompiler.Compile(_program, _helpers).Run((ulong)_memory, 64);
        var tiered = JitCompiler.Compile(_program, _helpers, _tiered);
        ulong first = tiered.Run((ulong)_memory, 64);
        tiered.JitCompleted.Wait();
        if (first != direct || tiered.Run((ulong)_memory, 64) != direct || !tiered.IsJitted)
            throw new InvalidOperationException("tiered program disagrees with the direct compile");
    }

    [GlobalCleanup]
    public void Cleanup() => NativeMemory.AlignedFree(_memory);

    [IterationCleanup]
    public void WaitForBackgroundCompile() => _last?.JitCompleted.Wait();

    /// <summary>Compile (RyuJIT included) + first run, as without the option.</summary>
    [Benchmark(Baseline = true)]
    public ulong EmitAndFirstCall() => JitCompiler.Compile(_program, _helpers).Run((ulong)_memory, 64);

    /// <summary>Tiered compile + first run (on the interpreter; RyuJIT compiles in the background).</summary>
    [Benchmark]
    public ulong TieredFirstCall()
    {
        _last = JitCompiler.Compile(_program, _helpers, _tiered);
        return _last.Run((ulong)_memory, 64);
    }

    /// <summary>Tiered compile + first run + waiting for the switch to RyuJIT's code.</summary>
    [Benchmark]
    public ulong TieredUntilJitted()
    {
        var compiled = JitCompiler.Compile(_program, _helpers, _tiered);
        ulong r0 = compiled.Run((ulong)_memory, 64);
        compiled.JitCompleted.Wait();
        return r0;
    }
}

/// <summary>
/// The clock this run had: 80,000 dependent one-cycle operations (<c>add</c>/<c>xor</c> alternating on
/// one register, which no compiler can shorten), so nanoseconds ÷ 80,000 is the cycle time. With it,
/// the loops of ../shared/bench can be quoted in cycles per iteration and set against their dependency
/// chains (docs/perf.md), whatever clock the shared machine ran at.
/// </summary>
public class ClockCalibrationBenchmarks
{
    ulong _seed = 3;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static ulong Chain(ulong x, ulong a, int n)
    {
        for (int i = 0; i < n; i++)
        {
            x += a; x ^= (ulong)i; x += a; x ^= (ulong)i;
            x += a; x ^= (ulong)i; x += a; x ^= (ulong)i;
        }
        return x;
    }

    /// <summary>80,000 dependent single-cycle ALU operations.</summary>
    [Benchmark]
    public ulong DependentOps80k() => Chain(_seed, 3, 10_000);
}
