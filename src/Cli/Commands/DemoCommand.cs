using System.Reflection;
using BpfJit.Cli.Hosting;
using BpfJit.Cli.Output;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Verifier;

namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>bpfjit demo</c>: the whole pipeline on the bundled tubular-style dispatcher (object and scenario
/// are embedded in the tool, so it needs no clang and no files): load, verify, compile, attach, look up,
/// time both engines, show the IL.
/// </summary>
public static class DemoCommand
{
    /// <summary>The embedded files, by their path in the repository (the scenario names the object relative to itself).</summary>
    static readonly string[] s_files = ["examples/dispatcher.json", "tests/programs/dispatcher.o"];

    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("demo", "the whole pipeline on a bundled tubular-style dispatcher", """
        usage: bpfjit demo [--seconds S] [--il-lines N] [--json]

        Loads the bundled tubular-style dispatcher (tests/programs/dispatcher.o, built from dispatcher.c
        by clang, and examples/dispatcher.json; both are embedded in the tool), verifies it, JIT-compiles
        it, attaches it to a socket table with three listening sockets and an LPM map of bindings, runs
        the scenario's lookups and prints each decision, times the lookups on the interpreter and on
        the JIT (S seconds each, default 0.5) and prints the IL of the program's first instructions
        (N lines after the prologue, default 30).
        --json prints {"object": "tests/programs/dispatcher.o", "program": "dispatcher", "instructions": 127,
        "verify": {"accepted": true, "insnsProcessed": 281, "error": null}, "ilInstructions": 399,
        "sockets": ["spectrum", ...], "bindings": 6, "lookups": [{"proto": "tcp", "from": "10.0.0.1:50000",
        "to": "1.2.3.1:80", "decision": "spectrum", "expected": "spectrum"}], "asExpected": 9,
        "nsPerLookup": {"interpreter": 3260.5, "jit": 300.1}, "ratio": 10.86, "il": ["; 0: r6 = r1", ...]}.
        Exit code 0 when every lookup went where the scenario expects, 1 otherwise.

        examples:
          bpfjit demo
          bpfjit demo --json --seconds 0.1
          dotnet run --project src/Cli -c Release -- demo --seconds 2
        """, Run)
    {
        Options =
        [
            Opt.Value("--seconds", "S", "seconds each engine is timed"),
            Opt.Value("--il-lines", "N", "lines of IL shown (default 30)"),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count > 0) throw new UsageException($"unexpected argument '{args.Positional[0]}'");
        double seconds = BenchCommand.Seconds(args, 0.5);
        int ilLines = int.TryParse(args.Get("--il-lines", "30"), out int n) && n >= 0 ? n : throw new UsageException("--il-lines must be a number");

        string dir = Path.Combine(Path.GetTempPath(), $"bpfjit-demo-{Guid.NewGuid():n}");
        try
        {
            Extract(dir);
            return Demo(Path.Combine(dir, s_files[0]), Path.Combine(dir, s_files[1]), seconds, ilLines, args.Has("--json"), stdout);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    static void Extract(string dir)
    {
        var assembly = typeof(DemoCommand).Assembly;
        foreach (string name in s_files)
        {
            using var resource = assembly.GetManifestResourceStream(name)
                ?? throw new InvalidOperationException($"the tool was built without its embedded {name}");
            string path = Path.Combine(dir, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using var file = File.Create(path);
            resource.CopyTo(file);
        }
    }

    static int Demo(string scenario, string objectPath, double seconds, int ilLines, bool json, TextWriter stdout)
    {
        var o = json ? TextWriter.Null : stdout;
        // 1. Load: what the ELF loader finds.
        var spec = ObjectFile.Load(objectPath);
        var program = spec.Programs.First(p => p.IsSupported);
        o.WriteLine($"1. load     {s_files[1]}: program {program.Name} (section {program.SectionName}, {program.Instructions.Length} instructions), " +
                    $"maps {string.Join(", ", spec.Maps.Select(m => $"{m.Name} ({m.Type})"))}");

        // 2. Verify, as the kernel would for a privileged loader. The scenario patches the zero-sized
        // 'destinations' map (as tubular does at load time); the runtime verifies again against the live maps.
        var result = ObjectVerification.Verify(spec, program, BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable());
        o.WriteLine(result.Accepted
            ? $"2. verify   accepted: {result.InsnsProcessed} instructions processed over all paths, stack {result.StackDepths.Sum()} bytes"
            : $"2. verify   rejected at insn {result.ErrorInsn}: {result.Error}");
        if (!result.Accepted)
        {
            if (json) JsonOutput.Write(stdout, w => { w.WriteStartObject(); WriteVerify(w, result); w.WriteEndObject(); });
            return Cli.Negative;
        }

        // 3-4. Build the scenario: maps, sockets, bindings; the program is bound to its maps, compiled and attached.
        using var jit = ScenarioBuilder.Build(scenario, JitEngine.Instance);
        var attached = jit.Namespace.SkLookup.Links[0].Program;
        var compiled = JitCompiler.Compile(attached.Instructions, attached.Helpers, JitOptions.Default, attached.Facts);
        string listing = compiled.GetIlListing();
        var listingLines = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        o.WriteLine($"3. compile  JIT: {attached.Instructions.Length} slots -> {listingLines.Count(l => l.StartsWith("  IL_", StringComparison.Ordinal))} IL instructions (DynamicMethod)");
        var bindings = jit.Maps.TryGetValue("bindings", out var b) ? b.Keys().Count() : 0;
        o.WriteLine($"4. attach   {jit.Sockets.Count} sockets ({string.Join(", ", jit.Sockets.Values.Select(s => $"{s.Name} {s.Local}"))}), " +
                    $"{bindings} bindings; link {jit.Namespace.SkLookup.Links[0].Id} in netns {jit.Namespace.Inode}");

        // 5. Lookups.
        var lookups = jit.Steps.OfType<LookupStep>().ToList();
        o.WriteLine($"5. lookups  {lookups.Count} packets through the hook:");
        int asExpected = 0;
        var decisions = new List<(Packet Packet, string Got, string? Expected)>();
        foreach (var step in lookups)
        {
            var r = jit.Namespace.Lookup(step.Packet);
            string got = r.Outcome == LookupOutcome.Socket ? r.Socket!.Name! : r.Outcome == LookupOutcome.Refused ? "refused" : "none";
            bool ok = step.Expect == null || step.Expect == got;
            if (ok) asExpected++;
            decisions.Add((step.Packet, got, step.Expect));
            o.WriteLine($"   {step.Packet,-40} -> {got}{(ok ? "" : $"   (expected {step.Expect})")}");
        }
        o.WriteLine($"   {asExpected} of {lookups.Count} as the scenario expects");

        // 6. Timing: the same lookups on each engine.
        using var interp = ScenarioBuilder.Build(scenario, InterpreterEngine.Instance);
        var packets = lookups.Select(l => l.Packet).ToArray();
        double Time(NetNamespace ns) => Measure.Time(count =>
        {
            for (long i = 0; i < count; i++) ns.Lookup(packets[i % packets.Length]);
        }, seconds).NsPerRun;
        double tInterp = Time(interp.Namespace), tJit = Time(jit.Namespace);
        double ratio = tInterp / tJit;
        o.WriteLine($"6. timing   ns per lookup (hook, program, socket table): interpreter {tInterp:F0}, jit {tJit:F0}, " +
                    (ratio >= 1 ? $"jit is {ratio:F1}x faster" : $"jit is {1 / ratio:F1}x slower"));

        // 7. The IL: the method's header, then the code of the first eBPF instructions (after the prologue).
        int first = Array.FindIndex(listingLines, l => l.StartsWith("; 0:", StringComparison.Ordinal));
        var shown = listingLines.Skip(Math.Max(first, 0)).Take(ilLines).ToList();
        o.WriteLine($"7. IL       the method, then the IL of its first instructions ({shown.Count} of {listingLines.Length} lines; each eBPF instruction is a '; N:' comment):");
        foreach (var line in listingLines.TakeWhile(l => l.StartsWith("//", StringComparison.Ordinal))) o.WriteLine("   " + line.TrimEnd('\r'));
        if (first > 0) o.WriteLine($"   ; prologue: {listingLines.Skip(1).Take(first).Count(l => l.StartsWith("  IL_", StringComparison.Ordinal))} IL instructions (registers, stack frame)");
        foreach (var line in shown) o.WriteLine("   " + line.TrimEnd('\r'));
        if (json)
        {
            JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("object", s_files[1]);
                w.WriteString("program", program.Name);
                w.WriteNumber("instructions", program.Instructions.Length);
                WriteVerify(w, result);
                w.WriteNumber("ilInstructions", listingLines.Count(l => l.StartsWith("  IL_", StringComparison.Ordinal)));
                w.WriteStrings("sockets", jit.Sockets.Keys);
                w.WriteNumber("bindings", bindings);
                w.WriteStartArray("lookups");
                foreach (var (packet, got, expected) in decisions)
                {
                    w.WriteStartObject();
                    w.WriteString("proto", PacketOptions.ProtoName(packet.Protocol));
                    w.WriteString("from", packet.From.ToString());
                    w.WriteString("to", packet.To.ToString());
                    w.WriteString("decision", got);
                    if (expected == null) w.WriteNull("expected"); else w.WriteString("expected", expected);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteNumber("asExpected", asExpected);
                w.WriteStartObject("nsPerLookup");
                w.WriteNumber("interpreter", Math.Round(tInterp, 2));
                w.WriteNumber("jit", Math.Round(tJit, 2));
                w.WriteEndObject();
                w.WriteNumber("ratio", Math.Round(ratio, 2));
                w.WriteStrings("il", shown.Select(l => l.TrimEnd('\r')));
                w.WriteEndObject();
            });
        }
        return asExpected == lookups.Count ? Cli.Ok : Cli.Negative;
    }

    static void WriteVerify(System.Text.Json.Utf8JsonWriter w, VerifierResult result)
    {
        w.WriteStartObject("verify");
        w.WriteBoolean("accepted", result.Accepted);
        w.WriteNumber("insnsProcessed", result.InsnsProcessed);
        if (result.Error != null) w.WriteString("error", $"insn {result.ErrorInsn}: {result.Error}"); else w.WriteNull("error");
        w.WriteEndObject();
    }
}
