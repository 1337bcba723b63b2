using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BpfJit.Runtime;

namespace BpfJit.Perf;

/// <summary>The reference interpreter on the ../shared/bench programs: ns per run (r1 = memory, r2 = length).</summary>
[MemoryDiagnoser]
public unsafe class InterpreterBenchmarks
{
    Interpreter _interpreter = null!;
    ulong _r1, _r2;

    /// <summary>The program.</summary>
    [ParamsSource(nameof(Programs))]
    public string Program { get; set; } = "";

    /// <summary>The benchmark programs.</summary>
    public static IEnumerable<string> Programs => BenchPrograms.Names;

    /// <summary>Loads and prepares the program once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var test = BenchPrograms.Load(Program);
        _interpreter = new Interpreter(test.Program!, HelperTable.Bench());
        _r2 = (ulong)test.Memory.Length;
        if (_r2 > 0)
        {
            byte* mem = (byte*)NativeMemory.Alloc((nuint)_r2);
            test.Memory.CopyTo(new Span<byte>(mem, test.Memory.Length));
            _r1 = (ulong)mem;
            // The interpreter touches only registered memory.
            BpfJit.Runtime.Checked.MemoryRegions.Register(_r1, (int)_r2, BpfJit.Runtime.Checked.MemoryRegionKind.Context);
        }
        // Check the expected result once so a broken engine is never timed.
        ulong r0 = _interpreter.Run(_r1, _r2);
        if (r0 != test.ExpectedResult) throw new InvalidOperationException($"{Program}: expected {test.ExpectedResult}, got {r0}");
    }

    /// <summary>Frees the input memory.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (_r1 != 0)
        {
            BpfJit.Runtime.Checked.MemoryRegions.Unregister(_r1);
            NativeMemory.Free((void*)_r1);
        }
        _r1 = 0;
    }

    /// <summary>One run.</summary>
    [Benchmark]
    public ulong Run() => _interpreter.Run(_r1, _r2);
}
