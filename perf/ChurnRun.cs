using System.Diagnostics;
using System.Runtime.InteropServices;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Perf;

/// <summary>
/// Lookup throughput with and without update churn on another thread, in one run (issue 17: insert/delete
/// churn at 20,000 operations/s may cost at most 20 % of lookup throughput). Verb <c>churn</c>:
/// <c>dotnet perf/bin/Release/net10.0/BpfJit.Perf.dll churn [rounds]</c>.
/// <para>
/// For each map (lpm100k: 100,000 tubular bindings; hash10k: a full HASH of 10,000 keys; both from
/// <see cref="MapBenchmarks.Build"/>) the main thread looks up the 1000 probe keys through the program helper
/// in windows of 300 ms, alternating windows without churn and with a second thread inserting and deleting
/// other keys at 20,000 operations/s (paced; the map's size stays put and every probe still hits). Lookups
/// per second are counted against the lookup thread's CPU time (CLOCK_THREAD_CPUTIME_ID) as well as wall
/// time: on a shared machine the wall clock mostly measures the other processes. The report gives the
/// median of each and the cost of churn, 1 − with / without.
/// </para>
/// </summary>
public static unsafe class ChurnRun
{
    const int Rate = 20_000, WindowMs = 300;

    [StructLayout(LayoutKind.Sequential)]
    struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, TimeSpec* time);

    static long ThreadCpuNanoseconds()
    {
        TimeSpec t;
        if (ClockGetTime(3 /* CLOCK_THREAD_CPUTIME_ID */, &t) != 0) throw new InvalidOperationException("clock_gettime failed");
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    /// <summary>Runs the comparison; <c>args[0]</c> is the number of window pairs per map (default 15).</summary>
    public static int Run(string[] args)
    {
        int rounds = args.Length > 0 && int.TryParse(args[0], out int r) ? r : 15;
        Console.WriteLine($"| Map | lookups/CPU-s, no churn | with {Rate:N0} ops/s | cost | lookups/wall-s, no churn | with churn | cost | churn reached |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var name in new[] { "lpm100k", "hash10k" }) Measure(name, rounds);
        return 0;
    }

    static void Measure(string name, int rounds)
    {
        var (map, keys, memory) = MapBenchmarks.Build(name);
        var churn = new Churner(map);
        var thread = new Thread(churn.Loop) { IsBackground = true, Name = "churn" };
        thread.Start();
        var cpu = new List<double>[] { [], [] };
        var wall = new List<double>[] { [], [] };
        var reached = new List<double>();
        ulong handle = map.Handle;
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < 2; k++)
            {
                int mode = (round + k) % 2;   // alternate which goes first
                Volatile.Write(ref churn.Rate, mode == 0 ? 0 : Rate);
                Thread.Sleep(50);
                long ops0 = Volatile.Read(ref churn.Operations), cpu0 = ThreadCpuNanoseconds();
                var clock = Stopwatch.StartNew();
                long lookups = 0;
                ulong hits = 0;
                while (clock.ElapsedMilliseconds < WindowMs)
                {
                    MapEpoch.Enter();
                    for (int i = 0; i < keys.Length; i++) hits += KernelHelpers.MapLookupElem(handle, keys[i], 0, 0, 0) != 0 ? 1UL : 0;
                    MapEpoch.Exit();
                    lookups += keys.Length;
                }
                double seconds = clock.Elapsed.TotalSeconds, cpuSeconds = (ThreadCpuNanoseconds() - cpu0) / 1e9;
                if (hits != (ulong)lookups) throw new InvalidOperationException($"{name}: a probe missed");
                cpu[mode].Add(lookups / cpuSeconds);
                wall[mode].Add(lookups / seconds);
                if (mode == 1) reached.Add((Volatile.Read(ref churn.Operations) - ops0) / seconds);
            }
        }
        churn.Stop = true;
        thread.Join();
        double c0 = Median(cpu[0]), c1 = Median(cpu[1]), w0 = Median(wall[0]), w1 = Median(wall[1]);
        Console.WriteLine($"| {name} | {c0 / 1e6:F1} M | {c1 / 1e6:F1} M | {100 * (1 - c1 / c0):F1} % | {w0 / 1e6:F1} M | {w1 / 1e6:F1} M | {100 * (1 - w1 / w0):F1} % | {Median(reached):N0} ops/s |");
        map.Dispose();
        NativeMemory.Free((void*)memory);
    }

    static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    /// <summary>
    /// Paced churn: it earns <see cref="Rate"/> operations per second of wall time (at most 0.1 s banked) and
    /// sleeps a millisecond when it has none to spend. LPM: inserts UDP bindings (the probes are TCP) and deletes them oldest first,
    /// 1000 live. HASH (full): deletes one of the 9,000 keys the probes do not use and inserts it again.
    /// </summary>
    sealed class Churner(BpfMap map)
    {
        public int Rate;
        public long Operations;
        public volatile bool Stop;

        public void Loop()
        {
            var rng = new Random(2);
            var live = new Queue<byte[]>();
            bool lpm = map is LpmTrieMap;
            uint next = 1000;
            bool deleteNext = true;
            byte[] value = new byte[8];
            long last = Stopwatch.GetTimestamp();
            double credit = 0;
            while (!Stop)
            {
                long now = Stopwatch.GetTimestamp();
                // Up to 0.1 s of operations banked: a sleep that overruns (a busy machine) is made up in a burst.
                int rate = Volatile.Read(ref Rate);
                credit = Math.Min(rate / 10.0, credit + (now - last) * (double)rate / Stopwatch.Frequency);
                last = now;
                if (credit < 1)
                {
                    Thread.Sleep(1);
                    continue;
                }
                credit--;
                int r;
                if (lpm)
                {
                    if (live.Count >= 1000 && deleteNext) r = map.Delete(live.Dequeue());
                    else
                    {
                        var key = new byte[23];
                        BitConverter.GetBytes(24 + 96 + rng.Next(16, 33)).CopyTo(key, 0);
                        key[4] = 17;
                        BitConverter.GetBytes((ushort)rng.Next(1, 65536)).CopyTo(key, 5);
                        key[17] = 0xff; key[18] = 0xff;
                        rng.NextBytes(key.AsSpan(19, 4));
                        r = map.Update(key, value);
                        if (r == 0) live.Enqueue(key);
                        else r = 0;   // a random duplicate: counted, nothing changed
                    }
                }
                else
                {
                    var key = BitConverter.GetBytes(next * 2654435761u);
                    r = deleteNext ? map.Delete(key) : map.Update(key, value);
                    if (!deleteNext) next = next == 9_999 ? 1000 : next + 1;
                }
                deleteNext = !deleteNext;
                if (r != 0) throw new InvalidOperationException($"churn: map operation failed: {r}");
                Interlocked.Increment(ref Operations);
            }
        }
    }
}
