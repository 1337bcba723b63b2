using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

// Usage:
//   BpfJit.ColdStart OBJECT              one cold pipeline in this process; prints one line of phase figures
//   BpfJit.ColdStart OBJECT --runs N     the line above in N fresh processes; prints each figure's median, min, max
// BPFJIT_COLD_WARMUP=1 runs Warmup.Run (BpfJit.IlEmitter) before the phases and reports its cost as "warmup";
// BPFJIT_COLD_WARMUP=start[:MS] starts Warmup.Start and races it (after MS ms) with the phases.
// BPFJIT_COLD_READ_FIRST=1 reads the object's bytes once before the phases: a host that has done file I/O
// already does not pay the runtime's first file read inside ObjectFile.Load.
// Environment variables (DOTNET_ReadyToRun, DOTNET_TieredPGO, ...) pass through to the child processes.
// Per phase: NAME = wall time (us), NAME.cpu = this thread's CPU time (us; what a loaded machine inflates
// least), NAME.jit = time this thread spent in RyuJIT (us), NAME.n = methods RyuJIT compiled;
// "cold" = load..firstrun, what a packet stack pays for its first program.
var inv = CultureInfo.InvariantCulture;
if (args.Length == 3 && args[1] == "--runs")
{
    int n = int.Parse(args[2], inv);
    var samples = new List<double[]>();
    string[]? names = null;
    for (int i = 0; i < n; i++)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        // dotnet BpfJit.ColdStart.dll: keep the host's own argument (the dll) in front.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(ColdRun).Assembly.Location);
        psi.ArgumentList.Add(args[0]);
        var wall = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        string line = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        double processUs = wall.Elapsed.TotalMicroseconds;
        if (p.ExitCode != 0) throw new InvalidOperationException($"child exited with {p.ExitCode}: {line}");
        var fields = line.Split(' ').Select(f => f.Split('=')).ToArray();
        names ??= [.. fields.Select(f => f[0]), "process"];
        samples.Add([.. fields.Select(f => double.Parse(f[1], inv)), processUs]);
    }
    Console.WriteLine($"{"figure",-14} {"median",10} {"min",10} {"max",10}   ({n} processes; us, or methods for .n)");
    for (int k = 0; k < names!.Length; k++)
    {
        var xs = samples.Select(s => s[k]).Order().ToArray();
        double median = xs.Length % 2 == 1 ? xs[xs.Length / 2] : (xs[xs.Length / 2 - 1] + xs[xs.Length / 2]) / 2;
        Console.WriteLine(string.Create(inv, $"{names[k],-14} {median,10:F0} {xs[0],10:F0} {xs[^1],10:F0}"));
    }
    return 0;
}
Console.WriteLine(ColdRun.Once(args[0]));
return 0;

/// <summary>One cold pipeline: the phases a packet stack or the CLI pays for its first program.</summary>
static class ColdRun
{
    public static string Once(string path)
    {
        var marks = new List<(string Name, double Wall, double Cpu, double Jit, long Methods)>(16);
        ThreadCpuMicros(); // the P/Invoke's own first call, outside the phases
        // The packet's addresses are the host's input, parsed before the phases: IP parsing is the host's first use of
        // System.Net's parser (three RyuJIT compiles, 1-2 ms), not BpfJit's.
        var from = IPEndPoint.Parse("10.0.0.1:50000");
        var to = IPEndPoint.Parse("127.0.0.1:7007");
        var sw = Stopwatch.StartNew();
        double cpu0 = ThreadCpuMicros();
        var jit0 = JitInfo.GetCompilationTime(currentThread: true);
        long methods0 = JitInfo.GetCompiledMethodCount(currentThread: true);
        void Mark(string name)
        {
            double wall = sw.Elapsed.TotalMicroseconds;
            double cpu = ThreadCpuMicros();
            var jit = JitInfo.GetCompilationTime(currentThread: true);
            long methods = JitInfo.GetCompiledMethodCount(currentThread: true);
            marks.Add((name, wall, cpu - cpu0, (jit - jit0).TotalMicroseconds, methods - methods0));
            cpu0 = cpu;
            jit0 = jit;
            methods0 = methods;
            sw.Restart();
        }

        // BPFJIT_COLD_WARMUP=1: Warmup.Run first (what a host that calls Warmup.Start at its start has done by the time
        // its first program comes); its own cost is reported as "warmup", outside "cold".
        (string Name, double Wall, double Cpu, double Jit, long Methods)? warmup = null;
        string? warmupMode = Environment.GetEnvironmentVariable("BPFJIT_COLD_WARMUP");
        // BPFJIT_COLD_WARMUP=start[:MS]: Warmup.Start on its background thread, then (after MS ms of the host's own
        // start, a sleep) the first program at once: the two race. "cold" is then the first program's latency beside the
        // warm-up; "cold.proc" the CPU of the whole process over the same time (both threads).
        if (warmupMode != null && warmupMode.StartsWith("start", StringComparison.Ordinal))
        {
            Warmup.Start();
            if (warmupMode.Length > 6) Thread.Sleep(int.Parse(warmupMode.AsSpan(6), CultureInfo.InvariantCulture));
            sw.Restart();
            cpu0 = ThreadCpuMicros();
            jit0 = JitInfo.GetCompilationTime(currentThread: true);
            methods0 = JitInfo.GetCompiledMethodCount(currentThread: true);
        }
        if (warmupMode == "1")
        {
            Warmup.Run();
            Mark("warmup");
            warmup = marks[0];
            marks.Clear();
        }
        double proc0 = ProcessCpuMicros();
        if (Environment.GetEnvironmentVariable("BPFJIT_COLD_READ_FIRST") == "1")
        {
            File.ReadAllBytes(path);
            sw.Restart();
            cpu0 = ThreadCpuMicros();
            jit0 = JitInfo.GetCompilationTime(currentThread: true);
            methods0 = JitInfo.GetCompiledMethodCount(currentThread: true);
            proc0 = ProcessCpuMicros();
        }
        var spec = ObjectFile.Load(path);
        Mark("load");
        var program = spec.Programs.First(p => p.IsSupported);
        var maps = new List<BpfMap>();
        // Maps only userspace uses may leave their sizes to the host (dispatcher.c's destinations).
        foreach (var m in spec.Maps)
        {
            var d = ObjectMaps.Definition(m);
            maps.Add(MapFactory.Create(d with { KeySize = d.KeySize == 0 ? 4 : d.KeySize, ValueSize = d.ValueSize == 0 ? 8 : d.ValueSize }));
        }
        Mark("maps");
        var helpers = SkLookupHelpers.CreateTable();
        Mark("helpers");
        var facts = new BpfJit.Verifier.SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
        Mark("verify");
        var code = CtxLoadRewriter.Rewrite(ProgramBinder.Bind(program, maps).Code);
        Mark("bind");
        var loaded = SkLookupProgram.Load(program.Name, code, JitEngine.Instance, helpers, facts);
        Mark("compile");
        using var ctx = new SkLookupContext();
        ctx.Fill(new Packet(SocketProtocol.Tcp, InetEndPoint.From(from), InetEndPoint.From(to)));
        MapEpoch.Enter();
        try { SkLookupHook.RunArray([loaded], ctx); }
        finally { MapEpoch.Exit(); }
        Mark("firstrun");
        double procCold = ProcessCpuMicros() - proc0;
        // The same program again, now warm: what the cold phases cost beyond the work itself.
        var facts2 = new BpfJit.Verifier.SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
        var again = SkLookupProgram.Load(program.Name, CtxLoadRewriter.Rewrite(ProgramBinder.Bind(program, maps).Code), JitEngine.Instance, helpers, facts2);
        MapEpoch.Enter();
        try { SkLookupHook.RunArray([again], ctx); }
        finally { MapEpoch.Exit(); }
        Mark("warm");
        var cold = marks.Take(7).ToArray();
        var all = marks.Append((Name: "cold", Wall: cold.Sum(m => m.Wall), Cpu: cold.Sum(m => m.Cpu), Jit: cold.Sum(m => m.Jit), Methods: cold.Sum(m => m.Methods)));
        if (warmup is { } w) all = all.Append(w);
        return string.Join(' ', all.Select(m => string.Create(CultureInfo.InvariantCulture,
            $"{m.Name}={m.Wall:F0} {m.Name}.cpu={m.Cpu:F0} {m.Name}.jit={m.Jit:F0} {m.Name}.n={m.Methods}")))
            + string.Create(CultureInfo.InvariantCulture, $" cold.proc={procCold:F0}");
    }

    struct Timespec { public long Sec, Nsec; }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGettime(int clock, out Timespec ts);

    // CLOCK_THREAD_CPUTIME_ID: the pipeline runs on this thread (RyuJIT too, for the methods it calls).
    static double ThreadCpuMicros() => ClockGettime(3, out var ts) == 0 ? ts.Sec * 1e6 + ts.Nsec / 1e3 : double.NaN;

    // CLOCK_PROCESS_CPUTIME_ID: every thread of the process (the warm-up's too).
    static double ProcessCpuMicros() => ClockGettime(2, out var ts) == 0 ? ts.Sec * 1e6 + ts.Nsec / 1e3 : double.NaN;
}
