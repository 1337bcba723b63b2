using BpfJit.IlEmitter;
using BpfJit.Cli.Output;
using BpfJit.Runtime.Scenarios;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit scenario FILE.json... [--engine interpreter|jit]</c></summary>
public static class ScenarioCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("scenario", "run SK_LOOKUP scenario files (sockets, maps, programs, lookups)", """
        usage: bpfjit scenario FILE.json... [--engine interpreter|jit] [--json]

        Builds the setup a scenario file describes - an object file's maps and programs (or inline
        asm programs), attached links, sockets, reuseport groups and map contents - then runs its
        lookups and prints one line per step:
          PASS tcp 127.0.0.2:8008 -> 127.0.0.1:7007: socket A
        and a closing 'N passed, N failed' per file. Steps besides lookups: test_run, update, delete,
        check, close, attach, detach, replace, query (see docs/sk-lookup-runtime.md).
        --json prints {"engine": "jit", "files": [{"file": "s.json", "steps": [{"status": "pass",
        "text": "tcp 127.0.0.2:8008 -> 127.0.0.1:7007: socket A"}], "passed": 1, "failed": 0}],
        "passed": 1, "failed": 0}; status is pass, fail or info (a step without an expectation).
        Exit code 0 when every check passed, 1 when one failed, 2 for a bad file (one line naming
        the JSON path, e.g. 's.json: $.sockets[2].bind: invalid address '1.2.3'').

        example file:
          {
            "object": "progs/redir_port.o",
            "attach": ["redir_port"],
            "sockets": [{"name": "A", "proto": "tcp", "bind": "127.0.0.1:8008", "state": "listen"}],
            "maps": {"redir_map": [{"key": 0, "socket": "A"}]},
            "lookups": [{"proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "expect": "A"}]
          }

        examples:
          bpfjit scenario tests/scenarios/selftest_tcp4_redir_port.json
          bpfjit scenario tests/scenarios/*.json --engine jit
          bpfjit scenario examples/dispatcher.json --json
        """, Run)
    {
        Operands = "FILE",
        Options =
        [
            Opt.Value("--engine", "ENGINE", "interpreter (default) or jit", "interpreter", "jit"),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count == 0) throw new UsageException("no FILE given");
        string engineName = args.Choice("--engine", "interpreter", "interpreter", "jit");
        if (!BpfEngines.ByName.TryGetValue(engineName, out var engine))
        {
            stderr.WriteLine($"bpfjit scenario: engine '{engineName}' is not available in this build");
            return Cli.BadInput;
        }
        int failed = 0;
        bool json = args.Has("--json");
        var results = new List<(string File, string Output, ScenarioOutcome Outcome)>();
        foreach (string file in args.Positional)
        {
            if (args.Positional.Count > 1 && !json) stdout.WriteLine($"== {file}");
            // A bad file (ScenarioException, a BpfException) is reported by Cli.Run as 'bpfjit scenario: FILE: ...'.
            var output = json ? new StringWriter() : stdout;
            var outcome = ScenarioRunner.RunFile(file, engine, output);
            failed += outcome.Failed;
            if (json) results.Add((file, output.ToString()!, outcome));
        }
        if (json) WriteJson(engine.Name, results, stdout);
        return failed > 0 ? Cli.Negative : Cli.Ok;
    }

    // Each line the runner printed is a step: "PASS text", "FAIL text (expected ...)" or plain text; the last is the count.
    static void WriteJson(string engine, List<(string File, string Output, ScenarioOutcome Outcome)> results, TextWriter stdout) =>
        JsonOutput.Write(stdout, w =>
        {
            w.WriteStartObject();
            w.WriteString("engine", engine);
            w.WriteStartArray("files");
            foreach (var (file, output, outcome) in results)
            {
                w.WriteStartObject();
                w.WriteString("file", file);
                w.WriteStartArray("steps");
                var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
                foreach (var line in lines.Take(lines.Count - 1))
                {
                    w.WriteStartObject();
                    string status = line.StartsWith("PASS ", StringComparison.Ordinal) ? "pass" : line.StartsWith("FAIL ", StringComparison.Ordinal) ? "fail" : "info";
                    w.WriteString("status", status);
                    w.WriteString("text", status == "info" ? line : line[5..]);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteNumber("passed", outcome.Passed);
                w.WriteNumber("failed", outcome.Failed);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("passed", results.Sum(r => r.Outcome.Passed));
            w.WriteNumber("failed", results.Sum(r => r.Outcome.Failed));
            w.WriteEndObject();
        });
}
