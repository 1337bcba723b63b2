using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using BpfJit.Cli.Hosting;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Baselines;

/// <summary>
/// The perf project's <c>case NAME [--seconds S] [--json]</c> verb: one case of the SK_LOOKUP suite, with its maps,
/// sockets and timed packet, timed through the hook's run array on the interpreter, the JIT and the hand-written
/// C# baseline of the same logic (docs/perf.md, "One case, quickly"). It lives beside the cases, not in the
/// <c>bpfjit</c> tool, so that the tool's package carries no benchmark code.
/// </summary>
public static class SuiteCaseRun
{
    /// <summary>The verb's usage line.</summary>
    public const string Usage = "usage: case NAME [--seconds S] [--json]";

    /// <summary>Runs the verb on <paramref name="args"/> (after the verb); 0, or 2 for bad usage or missing objects (one line on stderr).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        string? name = null, secondsText = null;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--json") json = true;
            else if (a == "--seconds" && i + 1 < args.Length) secondsText = args[++i];
            else if (a.StartsWith('-') || name != null) return Bad(stderr, $"unexpected argument '{a}' ({Usage})");
            else name = a;
        }
        if (name == null) return Bad(stderr, $"no case given ({Usage}; cases: {string.Join(", ", SuiteCases.Names)})");
        if (!SuiteCases.IsCase(name))
            return Bad(stderr, $"unknown case '{name}' (cases: {string.Join(", ", SuiteCases.Names)})");
        double seconds = 1;
        if (secondsText != null && !(double.TryParse(secondsText, NumberStyles.Float, CultureInfo.InvariantCulture, out seconds) && seconds >= 0 && seconds <= 3600))
            return Bad(stderr, $"--seconds must be a number of seconds from 0 to 3600, not '{secondsText}'");

        // The verb is a host: object programs run only verified, and the host installs the verifier (as bpfjit does).
        ProgramVerification.Verifier ??= new BpfJit.Verifier.SkLookupProgramVerifier();
        SuiteCase suite;
        try { suite = SuiteCases.Create(name); }
        catch (Exception e) when (e is IOException or DirectoryNotFoundException)
        {
            return Bad(stderr, $"case {name}: the suite's objects were not found ({e.Message}); run from a clone of the repository");
        }
        using var _ = suite;
        using var ctx = new SkLookupContext();
        ctx.Fill(suite.TimedPacket);
        var rows = new List<(string Engine, double Ns, long Runs)>();
        foreach (var (engine, programs) in new (string, SkLookupProgram[])[]
        {
            ("interpreter", suite.LoadPrograms(InterpreterEngine.Instance)),
            ("jit", suite.LoadPrograms(JitEngine.Instance)),
            ("hand-written", suite.LoadHandWritten()),
        })
        {
            var (ns, runs) = TimeArray(programs, ctx, seconds);
            rows.Add((engine, ns, runs));
        }
        double ratio = rows[0].Ns / rows[1].Ns, handRatio = rows[1].Ns / rows[2].Ns;
        if (json) WriteJson(stdout, name, suite, seconds, rows, ratio, handRatio);
        else
        {
            stdout.WriteLine($"case {name} on {suite.TimedPacket}");
            foreach (var (engine, ns, runs) in rows)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{engine,-12} {ns,10:F1} ns/run  ({runs:N0} runs)"));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"jit is {ratio:F1}x {(ratio >= 1 ? "faster" : "slower")} than the interpreter"));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"jit takes {handRatio:F2}x the hand-written C# time"));
        }
        return 0;
    }

    static int Bad(TextWriter stderr, string message)
    {
        stderr.WriteLine($"case: {message}");
        return 2;
    }

    // The hook's run array over one context, inside one map read-side section per batch (as bpfjit bench times a program).
    static (double, long) TimeArray(SkLookupProgram[] array, SkLookupContext ctx, double seconds) =>
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
        }, seconds);

    // The shape of bpfjit bench --json, plus jitOverHandWritten; no compile times: a case loads all its objects at once.
    static void WriteJson(TextWriter stdout, string name, SuiteCase suite, double seconds,
        List<(string Engine, double Ns, long Runs)> rows, double ratio, double handRatio)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("program", $"case:{name}");
            w.WriteString("context", $"{suite.TimedPacket}, ingress_ifindex {suite.TimedPacket.IngressIfindex}");
            w.WriteNumber("seconds", seconds);
            BenchRows.Write(w, rows, ratio);
            w.WriteNumber("jitOverHandWritten", Math.Round(handRatio, 2));
            w.WriteEndObject();
        }
        stdout.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
    }
}
