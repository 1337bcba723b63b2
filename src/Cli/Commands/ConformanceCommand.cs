using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Conformance;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit conformance PATH... [--engine interpreter|jit] [--cpu v1|v2|v3|v4]</c></summary>
public static class ConformanceCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("conformance", "run bpf_conformance .data files on an engine", """
        usage: bpfjit conformance PATH... [--engine interpreter|jit] [--cpu v1|v2|v3|v4] [--quiet] [--json]

        Runs bpf_conformance test vectors (.data files, or directories of them) with the suite's
        machine model: r1 = input memory, r2 = its length, 512-byte stack, helper 5 = unwind.
        Prints PASS/FAIL/SKIP per file, then 'N passed, N failed' (', N skipped' when any).
        --json prints {"engine": "jit", "cpu": "v4", "results": [{"file": "add.data", "status": "pass",
        "detail": null}], "passed": 1, "failed": 0, "skipped": 0}; status is pass, fail, skip or error.
        --cpu skips tests that need a newer instruction set than the one named (default v4: all).
        Exit code 0 when nothing failed, 1 when a test failed, 2 on bad usage or a malformed file
        (reported on stderr as 'FILE: line N: ...' or 'FILE: instruction N: ...').

        examples:
          bpfjit conformance ../shared/conformance
          bpfjit conformance ../shared/conformance/add.data --engine jit
          bpfjit conformance examples/asm --cpu v2
          bpfjit conformance ../shared/conformance --engine jit --json
        """, Run)
    {
        Operands = "PATH",
        Options =
        [
            Opt.Value("--engine", "ENGINE", "interpreter (default) or jit", "interpreter", "jit"),
            Opt.Value("--cpu", "VERSION", "the eBPF ISA version the tests may use: v1, v2, v3 or v4 (default)", "v1", "v2", "v3", "v4"),
            Opt.Flag("--quiet", "print only failures and the summary"),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count == 0) throw new UsageException("no PATH given");
        string engineName = args.Choice("--engine", "interpreter", "interpreter", "jit");
        if (!BpfEngines.ByName.TryGetValue(engineName, out var engine))
        {
            stderr.WriteLine($"bpfjit conformance: engine '{engineName}' is not available in this build");
            return Cli.BadInput;
        }
        int cpu = args.Choice("--cpu", "v4", "v1", "v2", "v3", "v4")[1] - '0';
        var files = ConformanceRunner.ExpandPaths(args.Positional);
        if (files.Count == 0)
            throw new BpfJit.Frontend.BpfException($"{string.Join(", ", args.Positional)}: no .data test files");
        int passed = 0, failed = 0, skipped = 0, malformed = 0;
        bool json = args.Has("--json");
        var results = new List<(string File, ConformanceResult Result)>();
        var text = json ? TextWriter.Null : stdout;
        foreach (var file in files)
        {
            var result = ConformanceRunner.RunFile(file, engine, cpu: cpu);
            results.Add((file, result));
            string name = Path.GetFileName(file);
            switch (result.Status)
            {
                case ConformanceStatus.Pass:
                    passed++;
                    if (!args.Has("--quiet")) text.WriteLine($"PASS {name}");
                    break;
                case ConformanceStatus.Skip:
                    skipped++;
                    text.WriteLine($"SKIP {name}: {result.Detail}");
                    break;
                case ConformanceStatus.Error:
                    malformed++;
                    failed++;
                    stderr.WriteLine($"bpfjit conformance: {result.Detail}");
                    break;
                default:
                    failed++;
                    text.WriteLine($"FAIL {name}: {result.Detail}");
                    break;
            }
        }
        text.WriteLine(skipped > 0 ? $"{passed} passed, {failed} failed, {skipped} skipped" : $"{passed} passed, {failed} failed");
        if (json)
        {
            Output.JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("engine", engine.Name);
                w.WriteString("cpu", $"v{cpu}");
                w.WriteStartArray("results");
                foreach (var (file, result) in results)
                {
                    w.WriteStartObject();
                    w.WriteString("file", file);
                    w.WriteString("status", result.Status.ToString().ToLowerInvariant());
                    if (result.Status == ConformanceStatus.Pass) w.WriteNull("detail");
                    else w.WriteString("detail", result.Detail);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteNumber("passed", passed);
                w.WriteNumber("failed", failed);
                w.WriteNumber("skipped", skipped);
                w.WriteEndObject();
            });
        }
        if (malformed > 0) return Cli.BadInput;
        return failed > 0 ? Cli.Negative : Cli.Ok;
    }
}
