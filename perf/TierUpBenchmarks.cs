using BenchmarkDotNet.Attributes;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Perf;

/// <summary>
/// Issue 17, deliverable 5: how many tiered loads per second the background compiles keep up with. One
/// operation is a tiered load of the 104-slot program plus its share of waiting until every load of the burst
/// switched to RyuJIT's code (or was shed: the run prints <see cref="TierUpQueue.Statistics"/>), so 1 / mean
/// is the sustained load rate the queue absorbs without falling behind.
/// </summary>
[MemoryDiagnoser(false)]
public class TierUpThroughputBenchmarks
{
    const int Burst = 500;
    Instruction[] _program = [];
    readonly HelperTable _helpers = HelperTable.Bench();
    readonly JitOptions _tiered = new() { Tiered = true };

    [GlobalSetup]
    public void Setup() => _program = Assembler.Assemble(JitCompileLatencyBenchmarks.HundredInstructions());

    [GlobalCleanup]
    public void Cleanup() => Console.WriteLine($"// TierUpQueue: {TierUpQueue.Statistics}, {TierUpQueue.MaxWorkers} workers");

    /// <summary>A burst of tiered loads, then the wait for every background compile.</summary>
    [Benchmark(OperationsPerInvoke = Burst)]
    public int LoadsUntilJitted()
    {
        var compiled = new CompiledProgram[Burst];
        for (int i = 0; i < Burst; i++) compiled[i] = JitCompiler.Compile(_program, _helpers, _tiered);
        int jitted = 0;
        foreach (var c in compiled)
        {
            try { c.JitCompleted.Wait(); jitted++; }
            catch (AggregateException) { }  // shed: counted in TierUpQueue.Statistics
        }
        return jitted;
    }
}
