using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Baselines;

/// <summary>
/// The perf project's <c>lpm</c> verb (docs/perf.md, "LPM_TRIE lookup cost by shape"): LPM_TRIE lookup cost
/// by the number of distinct prefix lengths and of bindings, IPv4 and IPv6, BpfJit's JIT beside the kernel's
/// LPM_TRIE in the same run, and the memory per binding of both maps.
/// <para>
/// Each configuration is a case of perf/programs/lpm_shape.o: <c>N</c> prefixes over <c>L</c> distinct lengths
/// (evenly spread from 0 to the maximum; one prefix of each length first, then random lengths of the set,
/// random bits), and 65,536 probe addresses, each under a random stored prefix with random bits past it. A
/// run looks up the next probe; the base program does everything but the LPM lookup, so lookup − base is
/// one lookup. The kernel times its runs with BPF_PROG_TEST_RUN (which stops its clock while the task is
/// descheduled); BpfJit's are timed by this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) for the same
/// reason. Passes alternate kernel and BpfJit; the medians are reported.
/// </para>
/// </summary>
public static unsafe class LpmShape
{
    /// <summary>The verb's usage line.</summary>
    public const string Usage = "usage: lpm [--family 4|6|both] [--lengths 1,8,32,64,129] [--bindings 10,1000,100000,1000000] [--passes 3] [--repeat 1000000]"
        + " | lpm dispatch [--cases a,b] [--passes 3] [--repeat 1000000] | lpm churn [--bindings 1000000] [--lengths 32] [--seconds 3] [--fresh all|longest] | lpm structures";

    const int Probes = 1 << 16;

    /// <summary>Builds the case: <paramref name="bindings"/> prefixes over <paramref name="lengths"/> distinct lengths.</summary>
    public static SuiteCase Create(bool v6, int lengths, int bindings, int seed = 1)
    {
        int max = v6 ? 128 : 32, bytes = max / 8;
        if (lengths < 1 || lengths > max + 1 || bindings < lengths) throw new ArgumentException($"{lengths} lengths and {bindings} bindings do not fit /{max}");
        int[] set = lengths == 1 ? [max] : [.. Enumerable.Range(0, lengths).Select(i => (int)Math.Round((double)max * i / (lengths - 1))).Distinct()];
        var rng = new Random(seed);
        var stored = new HashSet<(int, UInt128)>();
        var prefixes = new List<(int Length, UInt128 Bits)>(bindings);
        UInt128 Mask(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);
        UInt128 Random128() => new((ulong)rng.NextInt64() ^ (ulong)rng.NextInt64() << 1, (ulong)rng.NextInt64() ^ (ulong)rng.NextInt64() << 1);
        UInt128 AddressBits() => v6 ? Random128() : Random128() & (UInt128.MaxValue << 96);
        while (prefixes.Count < bindings)
        {
            int length = prefixes.Count < set.Length ? set[prefixes.Count] : set[rng.Next(set.Length)];
            var bits = AddressBits() & Mask(length);
            if (stored.Add((length, bits))) prefixes.Add((length, bits));
        }
        string map = v6 ? "lpm6" : "lpm4";
        var fills = new List<SuiteFill>(bindings + Probes);
        var address = new byte[16];
        for (int i = 0; i < prefixes.Count; i++)
        {
            var key = new byte[4 + bytes];
            BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)prefixes[i].Length);
            BinaryPrimitives.WriteUInt128BigEndian(address, prefixes[i].Bits);
            address.AsSpan(0, bytes).CopyTo(key.AsSpan(4));
            fills.Add(new(map, key, BitConverter.GetBytes((uint)i)));
        }
        for (int i = 0; i < Probes; i++)
        {
            var (length, bits) = prefixes[rng.Next(prefixes.Count)];
            var probe = new byte[16];
            BinaryPrimitives.WriteUInt128BigEndian(probe, bits | (AddressBits() & ~Mask(length)));
            fills.Add(new("probes", BitConverter.GetBytes((uint)i), probe));
        }
        string f = v6 ? "6" : "4";
        var packet = new Packet(SocketProtocol.Tcp, new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(SuiteCases.Ip4(192, 0, 2, 1)), 40000),
            new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(SuiteCases.Ip4(127, 0, 0, 1)), 80), 1);
        return new SuiteCase($"lpm{f}_{lengths}x{bindings}", Path.Combine(SuiteCases.Root(), "perf/programs/lpm_shape.o"),
            [$"lpm{f}_lookup", $"lpm{f}_base"], [], [.. fills], packet, false, _ => packet, _ => []);
    }

    /// <summary>Runs the verb on <paramref name="args"/> (after the verb); 0, or 2 for bad usage.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length > 0 && args[0] == "dispatch") return Dispatch(args[1..]);
        if (args.Length > 0 && args[0] == "churn") return LpmChurn.Run(args[1..]);
        if (args.Length > 0 && args[0] == "structures") return LpmStructures.Run();
        string family = "both";
        int[] lengths = [1, 8, 32, 64, 129], bindings = [10, 1000, 100_000, 1_000_000];
        int passes = 3;
        uint repeat = 1_000_000;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            int[] Ints() => [.. v.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))];
            switch (args[i])
            {
                case "--family": family = v; break;
                case "--lengths": lengths = Ints(); break;
                case "--bindings": bindings = Ints(); break;
                case "--passes": passes = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--repeat": repeat = uint.Parse(v, CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine($"lpm: unknown option {args[i]} ({Usage})");
                    return 2;
            }
        }
        ProgramVerification.Verifier ??= new BpfJit.Verifier.SkLookupProgramVerifier();
        bool kernel = KernelBpf.Available;
        if (!kernel) Console.WriteLine($"kernel column skipped: bpf() is not permitted here ({KernelBpf.UnavailableReason})");
        Console.WriteLine($"one lookup = lookup − base program; medians of {passes} alternating passes; kernel: BPF_PROG_TEST_RUN, repeat {repeat:N0}; BpfJit: JIT, thread CPU time");
        Console.WriteLine("| family | lengths | bindings | BpfJit ns/lookup | kernel ns/lookup | kernel ÷ BpfJit | BpfJit bytes/binding | kernel memlock bytes/binding | BpfJit markers | BpfJit stride tables |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (bool v6 in family switch { "4" => new[] { false }, "6" => [true], _ => [false, true] })
            foreach (int n in bindings)
                foreach (int l in lengths)
                {
                    if (l > (v6 ? 129 : 33) || n < l) continue;
                    Measure(v6, l, n, passes, repeat, kernel);
                }
        return 0;
    }

    static void Measure(bool v6, int lengths, int bindings, int passes, uint repeat, bool kernel)
    {
        using var suite = Create(v6, lengths, bindings);
        var map = (LpmTrieMap)suite.Object.Map(v6 ? "lpm6" : "lpm4");
        var programs = suite.LoadPrograms(JitEngine.Instance);
        using var ctx = new SkLookupContext();
        ctx.Fill(suite.TimedPacket);
        using var k = kernel ? KernelCase.Open(suite) : null;
        var ours = new List<double>();
        var theirs = new List<double>();
        for (int p = 0; p < passes; p++)
        {
            if (k != null)
            {
                var look = k.Run(0, repeat);
                var based = k.Run(1, repeat);
                if (look.Errno != 0 || based.Errno != 0) throw new InvalidOperationException($"{suite.Name}: test run errno {look.Errno}/{based.Errno}");
                theirs.Add((double)look.DurationNs - based.DurationNs);
            }
            ours.Add(CpuNsPerRun(programs[0], ctx) - CpuNsPerRun(programs[1], ctx));
        }
        foreach (var program in programs) program.Dispose();
        double a = Median(ours), b = k != null ? Median(theirs) : double.NaN;
        string memlock = k != null && Memlock(k.MapFd(v6 ? "lpm6" : "lpm4")) is long bytes ? F((double)bytes / bindings) : "–";
        Console.WriteLine($"| IPv{(v6 ? 6 : 4)} | {lengths} | {bindings:N0} | {F(a)} | {(k != null ? F(b) : "–")} | {(k != null ? (b / a).ToString("F1", CultureInfo.InvariantCulture) : "–")} | "
            + $"{F((double)map.MemoryBytes / bindings)} | {memlock} | {map.IndexMarkers:N0} | {map.StrideTables:N0} |");
    }

    /// <summary>
    /// <c>lpm dispatch</c>: the dispatcher cases of <see cref="SuiteCases.LpmDispatchNames"/>, whole runs (as the
    /// suite times them) by the kernel's JIT (BPF_PROG_TEST_RUN) and BpfJit's JIT (thread CPU time), alternating.
    /// </summary>
    /// <param name="args">The verb's options after its name.</param>
    /// <param name="defaultCases">The cases timed without <c>--cases</c>: the dispatcher cases when null.</param>
    public static int Dispatch(string[] args, IReadOnlyList<string>? defaultCases = null)
    {
        var cases = defaultCases ?? SuiteCases.LpmDispatchNames;
        int passes = 3;
        uint repeat = 1_000_000;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--cases": cases = args[i + 1].Split(','); break;
                case "--passes": passes = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--repeat": repeat = uint.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine($"lpm dispatch: unknown option {args[i]} ({Usage})");
                    return 2;
            }
        }
        ProgramVerification.Verifier ??= new BpfJit.Verifier.SkLookupProgramVerifier();
        if (!KernelBpf.Available)
        {
            Console.WriteLine($"skipped: bpf() is not permitted here ({KernelBpf.UnavailableReason})");
            return 0;
        }
        Console.WriteLine($"ns per run; medians of {passes} alternating passes; kernel: BPF_PROG_TEST_RUN, repeat {repeat:N0}; BpfJit: JIT, thread CPU time");
        Console.WriteLine("| case | BpfJit JIT | kernel JIT | kernel ÷ BpfJit | ≥ 2× |");
        Console.WriteLine("| --- | ---: | ---: | ---: | --- |");
        foreach (string name in cases)
        {
            using var suite = SuiteCases.Create(name);
            var programs = suite.LoadPrograms(JitEngine.Instance);
            using var ctx = new SkLookupContext();
            ctx.Fill(suite.TimedPacket);
            using var k = KernelCase.Open(suite);
            var ours = new List<double>();
            var theirs = new List<double>();
            for (int p = 0; p < passes; p++)
            {
                // A case of several programs (chain4) is the sum of their test runs, as the suite's report adds them.
                double total = 0;
                for (int q = 0; q < k.Programs; q++)
                {
                    var run = k.Run(q, repeat);
                    bool mustSelect = name.StartsWith("dispatcher", StringComparison.Ordinal);
                    if (run.Errno != 0 || (mustSelect && !run.Selected)) throw new InvalidOperationException($"{name}: kernel test run errno {run.Errno}, selected {run.Selected}");
                    total += run.DurationNs;
                }
                theirs.Add(total);
                ours.Add(CpuNsPerRun(programs, ctx));
            }
            foreach (var program in programs) program.Dispose();
            double a = Median(ours), b = Median(theirs);
            Console.WriteLine($"| {name} | {F(a)} ns | {F(b)} ns | {(b / a).ToString("F2", CultureInfo.InvariantCulture)} | {(b / a >= 2 ? "met" : "not met")} |");
        }
        return 0;
    }

    static string F(double x) => x.ToString(x < 100 ? "F1" : "F0", CultureInfo.InvariantCulture);

    static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The kernel's <c>memlock</c> of a map (its memory-usage figure, as bpftool shows it), from /proc/self/fdinfo.</summary>
    static long? Memlock(int fd)
    {
        foreach (var line in File.ReadLines($"/proc/self/fdinfo/{fd}"))
            if (line.StartsWith("memlock:", StringComparison.Ordinal)) return long.Parse(line.AsSpan(8).Trim(), CultureInfo.InvariantCulture);
        return null;
    }

    /// <summary>ns per run of a run array by this thread's CPU time: the median of 7 batches of about 40 ms (perf/CpuTime's batches; the median, not the minimum, as the kernel's figure is a mean).</summary>
    static double CpuNsPerRun(SkLookupProgram program, SkLookupContext ctx) => CpuNsPerRun([program], ctx);

    static double CpuNsPerRun(SkLookupProgram[] array, SkLookupContext ctx)
    {
        void Body(long n)
        {
            MapEpoch.Enter();
            try
            {
                for (long i = 0; i < n; i++) SkLookupHook.RunArray(array, ctx);
            }
            finally
            {
                MapEpoch.Exit();
            }
        }
        long batch = 1;
        double t0 = Cpu();
        while (Cpu() - t0 < 0.3)
        {
            Body(batch);
            batch *= 2;
        }
        batch = Math.Max(1, batch / 8);
        var times = new List<double>();
        for (int i = 0; i < 7; i++)
        {
            double a = Cpu();
            Body(batch);
            times.Add((Cpu() - a) / batch * 1e9);
        }
        return Median(times);
    }

    [StructLayout(LayoutKind.Sequential)]
    struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, TimeSpec* time);

    internal static double Cpu()
    {
        TimeSpec t;
        if (ClockGetTime(3 /* CLOCK_THREAD_CPUTIME_ID */, &t) != 0) throw new InvalidOperationException("clock_gettime failed");
        return t.Seconds + t.Nanoseconds * 1e-9;
    }
}
