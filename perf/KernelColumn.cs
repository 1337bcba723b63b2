using System.Globalization;
using BpfJit.Baselines;

namespace BpfJit.Perf;

/// <summary>
/// <c>BpfJit.Perf kernel [--repeat N] [--rounds R]</c>: every SK_LOOKUP suite case loaded into Linux
/// with the same objects and map contents, timed with BPF_PROG_TEST_RUN (<c>repeat</c> runs per
/// call, default 1,000,000; the best and the median of R calls, default 5). Prints a table and writes
/// BenchmarkDotNet.Artifacts/results/kernel-sklookup.csv for <c>report</c>. Skipped, with a printed
/// note, where bpf() is not permitted.
/// </summary>
static class KernelColumn
{
    public static int Run(string[] args)
    {
        uint repeat = 1_000_000;
        int rounds = 5;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--repeat") repeat = uint.Parse(args[i + 1], CultureInfo.InvariantCulture);
            else if (args[i] == "--rounds") rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            else { Console.Error.WriteLine($"kernel: unknown option {args[i]}"); return 2; }
        }
        if (!KernelBpf.Available)
        {
            Console.WriteLine($"kernel column skipped: bpf() is not permitted here ({KernelBpf.UnavailableReason})");
            return 0;
        }
        Suite.InstallVerifier();
        var lines = new List<string> { "Case,Program,MedianNs,BestNs,Retval,Selected" };
        Console.WriteLine($"BPF_PROG_TEST_RUN, repeat {repeat:N0}, {rounds} rounds; duration = the kernel's mean ns per run");
        Console.WriteLine("| case | program | median ns | best ns | retval | selects |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: | --- |");
        foreach (string name in SuiteCases.Names)
        {
            using var suite = SuiteCases.Create(name);
            var rs = Enumerable.Range(0, rounds).Select(_ => KernelSuite.Run(suite, repeat)).ToArray();
            for (int p = 0; p < suite.ProgramNames.Count; p++)
            {
                var runs = rs.Select(r => r[p]).ToArray();
                if (runs.Any(r => r.Errno != 0)) throw new InvalidOperationException($"{name}/{runs[0].Program}: test run errno {runs.First(r => r.Errno != 0).Errno}");
                var d = runs.Select(r => r.DurationNs).Order().ToArray();
                uint median = d[d.Length / 2], best = d[0];
                Console.WriteLine($"| {name} | {runs[0].Program} | {median} | {best} | {runs[0].Retval} | {(runs[0].Selected ? "yes" : "no")} |");
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"{name},{runs[0].Program},{median},{best},{runs[0].Retval},{runs[0].Selected}"));
            }
        }
        string dir = Path.Combine(Environment.CurrentDirectory, "BenchmarkDotNet.Artifacts", "results");
        Directory.CreateDirectory(dir);
        File.WriteAllLines(Path.Combine(dir, "kernel-sklookup.csv"), lines);
        Console.WriteLine($"wrote {Path.Combine(dir, "kernel-sklookup.csv")}");
        return 0;
    }
}
