namespace BpfJit.Runtime.SkLookup;

/// <summary>
/// Program run statistics, off by default as in the kernel: Linux counts a program's runs (<c>run_cnt</c>)
/// and their time (<c>run_time_ns</c>) only while <c>kernel.bpf_stats_enabled</c> is set or a
/// <c>BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)</c> file descriptor is open, so that a run costs nothing extra
/// otherwise. <see cref="Enable"/> is that file descriptor: statistics are collected while at least one
/// returned handle is undisposed. Runs started before the first <see cref="Enable"/> are not counted.
/// </summary>
public static class BpfStats
{
    static int s_enablers;

    /// <summary>True while at least one <see cref="Enable"/> handle is undisposed (read on every program run: one load).</summary>
    public static bool Enabled => Volatile.Read(ref s_enablers) > 0;

    /// <summary>
    /// <c>BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)</c>: turns run counting and timing on for every program until the
    /// returned handle is disposed (handles nest; disposing one twice counts once).
    /// </summary>
    public static IDisposable Enable()
    {
        Interlocked.Increment(ref s_enablers);
        return new Handle();
    }

    sealed class Handle : IDisposable
    {
        int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) Interlocked.Decrement(ref s_enablers);
        }
    }
}
