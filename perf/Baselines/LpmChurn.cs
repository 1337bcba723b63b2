using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Baselines;

/// <summary>
/// <c>lpm churn</c> (docs/perf.md, "LPM_TRIE update throughput"): update throughput of an LPM_TRIE while
/// another thread looks it up without pause, BpfJit's map and the kernel's, in one run. The map is an
/// <see cref="LpmShape"/> IPv4 case (<c>--bindings</c> prefixes over <c>--lengths</c> lengths). The
/// updating thread cycles through three operations: replace the value of a stored prefix, insert a new
/// prefix (a random length of the set, random bits; with <c>--fresh longest</c> a /32) and delete it again,
/// so the map keeps its size and shape.
/// The looking-up thread runs the case's lookup program: BpfJit's JIT through the hook's run array, the
/// kernel's through BPF_PROG_TEST_RUN (100,000 runs per call). Figures are per wall-clock second (on a
/// shared 2-core machine the other processes take their share of both threads) and, for updates, per
/// CPU-second of the updating thread (CLOCK_THREAD_CPUTIME_ID; the kernel's work is in its syscalls, so counted).
/// </summary>
public static class LpmChurn
{
    /// <summary>Runs the verb.</summary>
    public static int Run(string[] args)
    {
        int bindings = 1_000_000, lengths = 32;
        double seconds = 3;
        bool hosts = false;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--bindings": bindings = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--lengths": lengths = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--fresh": hosts = args[i + 1] == "longest"; break;
                default:
                    Console.Error.WriteLine($"lpm churn: unknown option {args[i]} ({LpmShape.Usage})");
                    return 2;
            }
        }
        ProgramVerification.Verifier ??= new BpfJit.Verifier.SkLookupProgramVerifier();
        using var suite = LpmShape.Create(false, lengths, bindings);
        var keys = suite.Fills.Where(f => f.Map == "lpm4").Select(f => f.Key).ToArray();
        int[] set = hosts ? [32] : [.. keys.Select(k => (int)BinaryPrimitives.ReadUInt32LittleEndian(k)).Distinct()];
        Console.WriteLine($"IPv4 LPM_TRIE, {bindings:N0} bindings over {lengths} lengths, {seconds} s per side; updates: replace, insert, delete in turn, inserting /{string.Join(",/", set.Order())}");
        Console.WriteLine("| map | updates/s while the other thread looks up | updates per CPU-second of the updating thread | lookups/s meanwhile |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");

        var map = (LpmTrieMap)suite.Object.Map("lpm4");
        var programs = suite.LoadPrograms(JitEngine.Instance);
        var (ours, oursCpu, ourLookups) = Churn(keys, set, seconds,
            (k, v) => map.Update(k, v), k => map.Delete(k),
            stop =>
            {
                using var ctx = new SkLookupContext();
                ctx.Fill(suite.TimedPacket);
                SkLookupProgram[] array = [programs[0]];
                long n = 0;
                while (!stop())
                {
                    MapEpoch.Enter();
                    try
                    {
                        for (int i = 0; i < 10_000; i++) SkLookupHook.RunArray(array, ctx);
                    }
                    finally
                    {
                        MapEpoch.Exit();
                    }
                    n += 10_000;
                }
                return n;
            });
        Console.WriteLine($"| BpfJit | {ours:N0} | {oursCpu:N0} | {ourLookups:N0} |");
        if (!KernelBpf.Available)
        {
            Console.WriteLine($"kernel skipped: bpf() is not permitted here ({KernelBpf.UnavailableReason})");
            return 0;
        }
        using var kernel = KernelCase.Open(suite);
        int fd = kernel.MapFd("lpm4");
        var (theirs, theirsCpu, theirLookups) = Churn(keys, set, seconds,
            (k, v) => KernelBpf.UpdateElem(fd, k, v), k => KernelBpf.DeleteElem(fd, k),
            stop =>
            {
                long n = 0;
                while (!stop())
                {
                    kernel.Run(0, 100_000);
                    n += 100_000;
                }
                return n;
            });
        Console.WriteLine($"| kernel | {theirs:N0} | {theirsCpu:N0} | {theirLookups:N0} |");
        return 0;
    }

    static (double Updates, double UpdatesPerCpu, double Lookups) Churn(byte[][] keys, int[] set, double seconds,
        Func<byte[], byte[], int> update, Func<byte[], int> delete, Func<Func<bool>, long> lookups)
    {
        bool done = false;
        long looked = 0;
        var reader = new Thread(() => looked = lookups(() => Volatile.Read(ref done))) { IsBackground = true };
        reader.Start();
        var rng = new Random(5);
        var value = new byte[4];
        var fresh = new byte[8];
        long ops = 0;
        double cpu0 = LpmShape.Cpu();
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalSeconds < seconds)
        {
            for (int i = 0; i < 300; i++)
            {
                switch (ops++ % 3)
                {
                    case 0:
                        BinaryPrimitives.WriteUInt32LittleEndian(value, (uint)ops);
                        if (update(keys[rng.Next(keys.Length)], value) != 0) throw new InvalidOperationException("replace failed");
                        break;
                    case 1:
                        int length = set[rng.Next(set.Length)];
                        BinaryPrimitives.WriteUInt32LittleEndian(fresh, (uint)length);
                        uint bits = length == 0 ? 0 : (uint)rng.NextInt64() & uint.MaxValue << (32 - length);
                        BinaryPrimitives.WriteUInt32BigEndian(fresh.AsSpan(4), bits);
                        update(fresh, value);   // may replace a stored prefix: then the delete below removes it, as the kernel's would
                        break;
                    default:
                        delete(fresh);
                        break;
                }
            }
        }
        double elapsed = watch.Elapsed.TotalSeconds, cpu = LpmShape.Cpu() - cpu0;
        Volatile.Write(ref done, true);
        reader.Join();
        return (ops / elapsed, ops / cpu, looked / elapsed);
    }
}
