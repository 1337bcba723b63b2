using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using BpfJit.Cli.Hosting;
using BpfJit.Cli.Output;
using BpfJit.Frontend.Conformance;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit bench PROGRAM [--program NAME] [--seconds S]</c>: interpreter vs JIT, ns per run.</summary>
public static class BenchCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("bench", "time a program on the interpreter and the JIT (ns per run, ratio)", """
        usage: bpfjit bench PROGRAM [--program NAME] [--seconds S] [--scenario FILE.json] [--cgroup MAP:INDEX=CGROUP,...]
                            [--proto tcp|udp] [--from IP:PORT] [--to IP:PORT] [--ifindex N] [--payload HEX]
                            [--members N] [--hash N] [--type sk_lookup|sk_reuseport] [--json]

        Runs PROGRAM repeatedly on each engine for S seconds (default 1; after a warm-up that doubles
        the batch until it takes 10 ms) and prints ns per run for each and the ratio. A progress bar
        is drawn on stderr when it is a terminal. Before that it times the JIT's compile of PROGRAM,
        from the loaded program (object parsed, or file read) to its first run: first in the process
        (cold: the runtime loads and compiles BpfJit's own code too), then warm (median of 5).
        PROGRAM is an SK_LOOKUP ELF object (or a scenario file), run on the context --proto, --from,
        --to and --ifindex describe (default tcp 10.0.0.1:50000 -> 127.0.0.1:80), with its maps set up
        as 'bpfjit run' does. An object's SK_REUSEPORT program (--program NAME) runs per packet as
        the group runs it (the struct sk_reuseport_md filled, then the program) for the reuseport group
        'bpfjit run' sets up (--members N, default 2; --hash N the flow hash; --payload HEX the bytes after
        the TCP or UDP header; an .asm or .bin file with --type sk_reuseport); or a bpf_conformance .data
        file (e.g. examples/asm), run with r1 = its
        memory and the suite's helpers.
        The SK_LOOKUP benchmark suite's cases (with their hand-written C# baselines) run from a clone,
        in perf/: cd perf && dotnet run -c Release -- case NAME (docs/perf.md).

        output:  interpreter  812.4 ns/run  (1,231,000 runs)
                 jit           41.0 ns/run  (24,390,000 runs)
                 jit is 19.8x faster than the interpreter
                 jit compile to first run: 30,167 us cold (first in the process), 188 us warm
        --json:  {"program": "straight.data", "context": "tcp 10.0.0.1:50000 -> 127.0.0.1:80" (or null),
                  "seconds": 1, "engines": [{"engine": "interpreter", "nsPerRun": 812.4, "runs": 1231000},
                  {"engine": "jit", "nsPerRun": 41.0, "runs": 24390000}], "ratio": 19.8,
                  "coldCompileMicros": 30167.2, "warmCompileMicros": 188.3}
        Exit code 0, or 2 for bad usage or a bad program (one line on stderr); 1 when the verifier
        rejects an SK_LOOKUP program.

        examples:
          bpfjit bench examples/asm/ipv4_in_subnet.data
          bpfjit bench tests/programs/dispatcher.o --scenario examples/dispatcher.json --to 1.2.3.4:80 --seconds 3
          bpfjit bench tests/scenarios/progs/test_sk_lookup.o --program select_sock_b --proto udp --to 127.0.0.1:9000
        """, Run)
    {
        Operands = "PROGRAM",
        Options =
        [
            Opt.Value("--program", "NAME", "the object's program to time (default the first SK_LOOKUP one)"),
            Opt.Value("--seconds", "S", "seconds per engine (default 1)"),
            Opt.Value("--scenario", "FILE.json", "sockets and map contents to set up first"),
            CgroupOption.Declare(),
            Opt.Value("--members", "N", "SK_REUSEPORT: sockets in the packet's reuseport group (default 2)"),
            .. ReuseportGroupSetup.Declare(),
            .. PacketOptions.Declare(),
            Opt.Retired("--case", "NAME"),
            Opt.Json(),
        ],
    };

    /// <summary>The error for <c>--case</c>: the suite's cases run from perf/ (the tool ships no benchmark code).</summary>
    public const string CaseMoved = "--case moved to the benchmark suite: from a clone, cd perf && dotnet run -c Release -- case NAME (docs/perf.md)";

    /// <summary>The --seconds option: a non-negative number of seconds.</summary>
    public static double Seconds(Args args, double fallback)
    {
        string? text = args.Get("--seconds");
        if (text == null) return fallback;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s >= 0 && s <= 3600 ? s
            : throw new UsageException($"--seconds must be a number of seconds from 0 to 3600, not '{text}'");
    }

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        // The option this verb had until the suite's cases left the tool: one line saying where they went.
        if (args.Has("--case")) throw new UsageException(CaseMoved);
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no PROGRAM given" : "give exactly one PROGRAM");
        string path = args.Positional[0];
        double seconds = Seconds(args, 1);
        bool conformance = path.EndsWith(".data", StringComparison.OrdinalIgnoreCase);
        if (conformance && (args.Has("--scenario") || args.Has("--program") || args.Has("--members") || args.Has("--hash") || args.Has("--type")
                || PacketOptions.Names.Any(args.Has)))
            throw new UsageException("a .data program takes no --scenario, --program, --members, --hash, --type or context options");
        var packet = conformance ? (BpfJit.Runtime.Sockets.Packet?)null : PacketOptions.Parse(args, required: false);
        var progress = Progress(stderr);
        // First, while the process is fresh: nothing of BpfJit has run yet but argument parsing.
        var compile = conformance ? ConformanceCompileTimes(path) : SkLookupCompileTimes(path, args, packet!.Value);

        var rows = new List<(string Engine, double Ns, long Runs)>();
        foreach (var (name, engine) in BpfEngines.ByName)
        {
            var (ns, runs) = conformance
                ? TimeConformance(path, engine, seconds, f => progress(name, f))
                : TimeSkLookup(path, args, packet!.Value, engine, seconds, f => progress(name, f));
            progress(name, -1);
            rows.Add((name, ns, runs));
        }
        double ratio = rows[0].Ns / rows[1].Ns;
        if (args.Has("--json"))
        {
            WriteJson(stdout, Path.GetFileName(path) + (args.Get("--program") is { } p ? $":{p}" : ""), packet, seconds, rows, ratio, compile);
            return Cli.Ok;
        }
        stdout.WriteLine($"program {path}{(packet is { } c ? $" on {c}" : "")}");
        foreach (var (engine, ns, runs) in rows)
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{engine,-12} {ns,10:F1} ns/run  ({runs:N0} runs)"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"jit is {ratio:F1}x {(ratio >= 1 ? "faster" : "slower")} than the interpreter"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"jit compile to first run: {compile.ColdMicros:N0} us cold (first in the process), {compile.WarmMicros:N0} us warm"));
        return Cli.Ok;
    }

    // A bar on a terminal; nothing when stderr is a file or a test's writer (the result lines say it all).
    static Action<string, double> Progress(TextWriter stderr)
    {
        if (!ReferenceEquals(stderr, Console.Error) || Console.IsErrorRedirected) return (_, _) => { };
        return (engine, fraction) =>
        {
            if (fraction < 0) { stderr.Write("\r" + new string(' ', 60) + "\r"); return; }
            int filled = (int)(fraction * 30);
            stderr.Write($"\r{engine,-12} [{new string('#', filled)}{new string('.', 30 - filled)}] {fraction * 100,3:F0}%");
        };
    }

    // How many warm compiles the warm figure is the median of.
    const int WarmCompiles = 5;

    /// <summary>
    /// The JIT's compile of an SK_LOOKUP program from its loaded object (or program file) to the end of its
    /// first run on a filled context: verification, map binding, IL emission, RyuJIT and the run. The first
    /// call in a process is the cold figure; the warm one is the median of <see cref="WarmCompiles"/> more.
    /// </summary>
    static (double ColdMicros, double WarmMicros) SkLookupCompileTimes(string path, Args args, BpfJit.Runtime.Sockets.Packet packet)
    {
        double Once()
        {
            using var host = ProgramHost.Load(path, args.Get("--program"), args.Get("--scenario"), JitEngine.Instance, fileType: ReuseportGroupSetup.FileType(args, path));
            packet = ReuseportGroupSetup.WithHash(args, host, packet);
            if (host.Reuseport != null)
            {
                var setup = ReuseportGroupSetup.Build(host, packet, ReuseportGroupSetup.Members(args));
                host.Reuseport.TestRun(setup.Group, setup.Found, packet);
                return Stopwatch.GetElapsedTime(host.LoadedAt).TotalMicroseconds;
            }
            using var ctx = new SkLookupContext();
            ctx.Fill(packet);
            MapEpoch.Enter();
            try { SkLookupHook.RunArray([host.Program], ctx); }
            finally { MapEpoch.Exit(); }
            return Stopwatch.GetElapsedTime(host.LoadedAt).TotalMicroseconds;
        }
        return ColdAndWarm(Once);
    }

    /// <summary>As <see cref="SkLookupCompileTimes"/> for a bpf_conformance file: from the parsed file to the first call.</summary>
    static (double ColdMicros, double WarmMicros) ConformanceCompileTimes(string path) => ColdAndWarm(() =>
    {
        var test = ConformanceFile.Load(path);
        var program = test.Program ?? throw new BpfJit.Frontend.BpfException($"{path}: no program in the file ({test.SkipReason ?? "no asm or raw section"})");
        long start = Stopwatch.GetTimestamp();
        var entry = JitEngine.Instance.Prepare(program, HelperTable.Bench());
        WithMemory(test, (memory, length) => entry(memory, length));
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    });

    static (double, double) ColdAndWarm(Func<double> once)
    {
        double cold = once();
        var warm = new double[WarmCompiles];
        for (int i = 0; i < warm.Length; i++) warm[i] = once();
        Array.Sort(warm);
        return (cold, warm[warm.Length / 2]);
    }

    static (double, long) TimeSkLookup(string path, Args args, BpfJit.Runtime.Sockets.Packet packet, IBpfEngine engine, double seconds, Action<double> progress)
    {
        using var host = ProgramHost.Load(path, args.Get("--program"), args.Get("--scenario"), engine, fileType: ReuseportGroupSetup.FileType(args, path));
        CgroupOption.Apply(args, host.Maps);
        packet = ReuseportGroupSetup.WithHash(args, host, packet);
        if (host.Reuseport != null) return TimeReuseport(host, ReuseportGroupSetup.Build(host, packet, ReuseportGroupSetup.Members(args)), packet, seconds, progress);
        if (args.Has("--members")) throw new UsageException("--members applies to SK_REUSEPORT programs only");
        using var ctx = new SkLookupContext();
        ctx.Fill(packet);
        return TimeArray([host.Program], ctx, seconds, progress);
    }

    // bpf_run_sk_reuseport per packet: the context filled for the group, the member found and the packet, then the run.
    static (double, long) TimeReuseport(ProgramHost host, ReuseportGroupSetup setup, BpfJit.Runtime.Sockets.Packet packet, double seconds, Action<double> progress)
    {
        var program = host.Reuseport!;
        using var ctx = new BpfJit.Runtime.SkReuseport.SkReuseportContext();
        uint hash = packet.FlowHash ?? packet.Hash();
        return Measure.Time(n =>
        {
            for (long i = 0; i < n; i++)
            {
                ctx.Fill(setup.Group, setup.Found, packet, hash);
                program.Run(ctx.Address);
            }
        }, seconds, progress);
    }

    // The hook's run array over one context, inside one map read-side section per batch.
    static (double, long) TimeArray(SkLookupProgram[] array, SkLookupContext ctx, double seconds, Action<double> progress) =>
        Measure.Time(n =>
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
        }, seconds, progress);

    static void WriteJson(TextWriter stdout, string program, BpfJit.Runtime.Sockets.Packet? packet, double seconds,
        List<(string Engine, double Ns, long Runs)> rows, double ratio, (double ColdMicros, double WarmMicros) compile) =>
        JsonOutput.Write(stdout, w =>
        {
            w.WriteStartObject();
            w.WriteString("program", program);
            if (packet is { } pk) w.WriteString("context", $"{pk}, ingress_ifindex {pk.IngressIfindex}");
            else w.WriteNull("context");
            w.WriteNumber("seconds", seconds);
            BenchRows.Write(w, rows, ratio);
            w.WriteNumber("coldCompileMicros", Math.Round(compile.ColdMicros, 1));
            w.WriteNumber("warmCompileMicros", Math.Round(compile.WarmMicros, 1));
            w.WriteEndObject();
        });

    static (double, long) TimeConformance(string path, IBpfEngine engine, double seconds, Action<double> progress)
    {
        var test = ConformanceFile.Load(path);
        var program = test.Program ?? throw new BpfJit.Frontend.BpfException($"{path}: no program in the file ({test.SkipReason ?? "no asm or raw section"})");
        var entry = engine.Prepare(program, HelperTable.Bench());
        return WithMemory(test, (memory, length) => Measure.Time(n =>
        {
            for (long i = 0; i < n; i++)
            {
                unsafe { test.Memory.AsSpan().CopyTo(new Span<byte>((byte*)memory, (int)length)); }
                entry(memory, length);
            }
        }, seconds, progress));
    }

    /// <summary>Runs <paramref name="body"/> with the test's memory copied to native memory (address, length), registered as a region programs may touch.</summary>
    static unsafe T WithMemory<T>(ConformanceFile test, Func<ulong, ulong, T> body)
    {
        int length = test.Memory.Length;
        byte* memory = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(length, 1));
        test.Memory.AsSpan().CopyTo(new Span<byte>(memory, length));
        // The program's memory is a region it may touch (the interpreter checks every access against them).
        BpfJit.Runtime.Checked.MemoryRegions.Register((ulong)memory, Math.Max(length, 1), BpfJit.Runtime.Checked.MemoryRegionKind.Context);
        try
        {
            return body(length == 0 ? 0 : (ulong)memory, (ulong)length);
        }
        finally
        {
            BpfJit.Runtime.Checked.MemoryRegions.Unregister((ulong)memory);
            NativeMemory.Free(memory);
        }
    }
}
