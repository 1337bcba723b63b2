using BenchmarkDotNet.Running;

namespace BpfJit.Perf;

/// <summary>
/// Runs the benchmarks: <c>dotnet perf/bin/Release/net10.0/BpfJit.Perf.dll --filter '*' --job short</c>.
/// Six verbs besides BenchmarkDotNet's arguments: <c>kernel</c> measures the SK_LOOKUP suite in the
/// Linux kernel (BPF_PROG_TEST_RUN), <c>report</c> turns the suite's results into tables and the
/// chart (see docs/perf.md, "SK_LOOKUP suite"), <c>churn</c> measures lookups with and without update
/// churn (<see cref="ChurnRun"/>), and <c>case NAME [--seconds S] [--json]</c> times one suite case on the
/// interpreter, the JIT and its hand-written baseline in seconds (<see cref="Baselines.SuiteCaseRun"/>), and
/// <c>lpm</c> measures LPM_TRIE lookups by the map's shape beside the kernel's (<see cref="Baselines.LpmShape"/>), and
/// <c>versus [--cases a,b] [--passes N] [--repeat N]</c> times every suite case's whole run by Linux's JIT and BpfJit's
/// JIT, alternating in one process (issue 23 item 1; <c>lpm dispatch</c> is the same for the dispatcher cases only).
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "kernel") return KernelColumn.Run(args[1..]);
        if (args.Length > 0 && args[0] == "report") return SuiteReport.Run(args[1..]);
        if (args.Length > 0 && args[0] == "churn") return ChurnRun.Run(args[1..]);
        if (args.Length > 0 && args[0] == "lpm") return Baselines.LpmShape.Run(args[1..]);
        if (args.Length > 0 && args[0] == "versus") return Baselines.LpmShape.Dispatch(args[1..], [.. Baselines.SuiteCases.Names, .. Baselines.SuiteCases.LpmDispatchNames.Except(Baselines.SuiteCases.Names)]);
        if (args.Length > 0 && args[0] == "case") return Baselines.SuiteCaseRun.Run(args[1..], Console.Out, Console.Error);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
