using System.Diagnostics;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// Times a body that performs N runs: doubles N until a batch takes 10 ms (this also warms the code
/// up: tiered compilation, caches), then repeats batches until the time is spent. Internal and compiled into
/// perf/Baselines too (its <c>case</c> verb times the suite's cases the way <c>bpfjit bench</c> times a program),
/// so that neither assembly references the other.
/// </summary>
internal static class Measure
{
    /// <summary>Runs <paramref name="batch"/> for about <paramref name="seconds"/>; <paramref name="progress"/> gets the fraction done.</summary>
    public static (double NsPerRun, long Runs) Time(Action<long> batch, double seconds, Action<double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        long n = 1;
        var watch = Stopwatch.StartNew();
        while (true)
        {
            watch.Restart();
            batch(n);
            if (watch.Elapsed.TotalMilliseconds >= 10 || n >= 1L << 40) break;
            n *= 2;
        }
        long runs = 0;
        var total = Stopwatch.StartNew();
        double budget = Math.Max(seconds, 0) * 1e9;
        do
        {
            batch(n);
            runs += n;
            progress?.Invoke(Math.Min(1, total.Elapsed.TotalNanoseconds / Math.Max(budget, 1)));
        }
        while (total.Elapsed.TotalNanoseconds < budget);
        return (total.Elapsed.TotalNanoseconds / runs, runs);
    }
}
