using System.Diagnostics;
using System.Text;
using BpfJit.Cli.Graph;
using BpfJit.Cli.Hosting;
using BpfJit.Cli.Output;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.SkLookup;
using BpfJit.Verifier;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit cfg PROGRAM [--program NAME] [-o OUT.svg|OUT.dot] [--json]</c></summary>
public static class CfgCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("cfg", "draw a program's control-flow graph with the verifier's register types", """
        usage: bpfjit cfg PROGRAM [--program NAME] [--map NAME:KEY:VALUE:ENTRIES,...] [--type sk_lookup|sk_reuseport]
                          [-o OUT.svg|OUT.dot] [--json]

        Splits the program into basic blocks (disassembled) and labels each with the register types
        the verifier proved at its entry (r1=ctx r10=fp; 'mixed' where paths disagree, 'unreachable'
        for dead code). Edges: true/false for conditional jumps, jump, next, call (bpf-to-bpf) and
        callback. PROGRAM is an SK_LOOKUP ELF object (--program picks one; default the first, verified
        against the object's maps once they pass the checks a load makes, as in verify; --map sizes the
        maps the object leaves open) or an .asm/.bin/.data program (verified without maps, as an SK_LOOKUP
        program unless --type sk_reuseport says it is an SK_REUSEPORT one).
        Without -o the Graphviz DOT text goes to stdout. With -o OUT.svg the SVG is drawn by Graphviz
        'dot' when it is on PATH (Debian: apt-get install graphviz); without it OUT.dot is written
        instead and stderr says so. -o OUT.dot always writes the DOT text.
        --json:  {"program": "dispatcher", "accepted": true, "error": null,
                  "blocks": [{"id": 0, "start": 0, "end": 7, "reachable": true,
                              "entry": {"r1": "ctx", "r10": "fp"},
                              "instructions": [{"index": 0, "text": "r6 = r1"}],
                              "edges": [{"block": 1, "kind": "true"}, {"block": 2, "kind": "false"}]}]}
        Exit code 0, 1 when the verifier rejects the program (the graph is still drawn, with the
        types up to the error), 2 for bad usage or a bad program.

        examples:
          bpfjit cfg tests/programs/dispatcher.o --map destinations:257:8:1024 -o dispatcher.svg
          bpfjit cfg tests/programs/subprog_calls.o --program subprog_hash > subprog.dot
          bpfjit cfg examples/prog.asm --json
        """, Run)
    {
        Operands = "PROGRAM",
        Options =
        [
            Opt.Value("--program", "NAME", "the object's program to draw (default the first)"),
            MapSizeOption.Option,
            Hosting.ReuseportGroupSetup.DeclareType(),
            Opt.Value("--output", ["-o"], "OUT", "write OUT.svg (Graphviz dot) or OUT.dot instead of the text"),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no PROGRAM given" : "give exactly one PROGRAM");
        string path = args.Positional[0];
        InputFile.RequireFile(path);
        var (name, code, result) = Verify(path, args.Get("--program"), args.Get(MapSizeOption.Name), Hosting.ReuseportGroupSetup.FileType(args, path));
        List<BasicBlock> blocks;
        try { blocks = ControlFlowGraph.Build(code); }
        catch (BpfException e) { throw new BpfException($"{path}: program {name}: {e.Message}", e); }
        var byStart = blocks.ToDictionary(b => b.Start, b => b.Id);

        if (args.Has("--json"))
        {
            JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("program", name);
                w.WriteBoolean("accepted", result.Accepted);
                if (result.Error != null) w.WriteString("error", $"insn {result.ErrorInsn}: {result.Error}");
                else w.WriteNull("error");
                w.WriteStartArray("blocks");
                foreach (var b in blocks)
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", b.Id);
                    w.WriteNumber("start", b.Start);
                    w.WriteNumber("end", b.End);
                    w.WriteBoolean("reachable", result.Facts[b.Start].Reachable);
                    w.WriteStartObject("entry");
                    foreach (var (reg, type) in EntryTypes(result, b)) w.WriteString(reg, type);
                    w.WriteEndObject();
                    w.WriteStartArray("instructions");
                    foreach (int i in ControlFlowGraph.Slots(code).Where(s => s >= b.Start && s < b.End))
                    {
                        w.WriteStartObject();
                        w.WriteNumber("index", i);
                        w.WriteString("text", Disassembler.Format(code, i));
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteStartArray("edges");
                    foreach (var e in b.Edges)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("block", byStart[e.Target]);
                        w.WriteString("kind", e.Kind);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            });
        }
        else
        {
            string dot = Dot(name, code, blocks, byStart, result);
            string? output = args.Get("--output");
            if (output == null) stdout.Write(dot);
            else if (output.EndsWith(".svg", StringComparison.OrdinalIgnoreCase)) WriteSvg(output, dot, stdout, stderr);
            else
            {
                File.WriteAllText(output, dot);
                stdout.WriteLine($"wrote {output} ({blocks.Count} blocks)");
            }
        }
        if (!result.Accepted) stderr.WriteLine($"bpfjit cfg: {path}: verifier rejected the program at insn {result.ErrorInsn}: {result.Error}");
        return result.Accepted ? Cli.Ok : Cli.Negative;
    }

    // An object's program is verified against its maps once they pass the checks a load makes (as verify does).
    static (string Name, Instruction[] Code, VerifierResult Result) Verify(string path, string? programName, string? mapSizes, ProgramType fileType)
    {
        if (ProgramFiles.IsElfFile(path))
        {
            var spec = ObjectFile.Load(path);
            MapSizeOption.Apply(mapSizes, spec, path);
            ProgramSpec? program = programName == null ? spec.Programs.FirstOrDefault(p => p.IsSupported)
                : spec.Programs.TryGet(programName, out var p) ? p : null;
            if (program == null)
                throw new BpfException($"{path}: no {(programName == null ? "SK_LOOKUP program" : $"program named '{programName}'")} in the object (programs: {string.Join(", ", spec.Programs.Select(x => x.Name))})");
            ObjectLoading.ValidateMaps(path, spec, MapSizeOption.Hint);
            return (program.Name, program.Instructions, ObjectVerification.Verify(spec, program, Hosting.ReuseportGroupSetup.Helpers(program.Type)));
        }
        if (programName != null) throw new UsageException("--program needs an object file");
        if (mapSizes != null) throw new UsageException($"{MapSizeOption.Name} needs an object file");
        var code = ProgramFiles.Load(path);
        return (Path.GetFileNameWithoutExtension(path), code,
            Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = Hosting.ReuseportGroupSetup.Helpers(fileType), ProgramType = fileType }));
    }

    static IEnumerable<(string Reg, string Type)> EntryTypes(VerifierResult result, BasicBlock b)
    {
        var facts = result.Facts[b.Start];
        if (!facts.Reachable) yield break;
        for (int r = 0; r <= BpfAbi.MaxRegister; r++)
        {
            var t = facts.RegTypeBefore(r);
            if (t == RegType.NotInit) continue;
            yield return ($"r{r}", t is { } type ? RegTypeNames.Name(type) : "mixed");
        }
    }

    static string Dot(string name, Instruction[] code, List<BasicBlock> blocks, Dictionary<int, int> byStart, VerifierResult result)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"digraph \"{Escape(name)}\" {{");
        sb.AppendLine("  node [shape=box, fontname=\"monospace\", fontsize=10];");
        sb.AppendLine("  edge [fontname=\"monospace\", fontsize=9];");
        foreach (var b in blocks)
        {
            var label = new StringBuilder();
            label.Append(Escape($"B{b.Id}  (insns {b.Start}-{b.End - 1})")).Append("\\l");
            var types = EntryTypes(result, b).Select(t => $"{t.Reg}={t.Type}").ToList();
            string entry = !result.Facts[b.Start].Reachable ? "unreachable" : types.Count == 0 ? "(no registers set)" : string.Join(" ", types);
            label.Append(Escape("entry: " + entry)).Append("\\l");
            foreach (int i in ControlFlowGraph.Slots(code).Where(s => s >= b.Start && s < b.End))
                label.Append(Escape($"{i,4}: {Disassembler.Format(code, i)}")).Append("\\l");
            string style = result.Facts[b.Start].Reachable ? "" : ", style=dashed, color=gray";
            if (!result.Accepted && result.ErrorInsn >= b.Start && result.ErrorInsn < b.End) style = ", color=red, penwidth=2";
            sb.AppendLine($"  b{b.Id} [label=\"{label}\"{style}];");
        }
        foreach (var b in blocks)
            foreach (var e in b.Edges)
            {
                string style = e.Kind switch
                {
                    "true" => ", color=darkgreen",
                    "false" => ", color=red",
                    "call" or "callback" => ", style=dashed",
                    _ => "",
                };
                sb.AppendLine($"  b{b.Id} -> b{byStart[e.Target]} [label=\"{e.Kind}\"{style}];");
            }
        sb.AppendLine("}");
        return sb.ToString();
    }

    static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    static void WriteSvg(string output, string dot, TextWriter stdout, TextWriter stderr)
    {
        string? dotTool = FindOnPath("dot");
        if (dotTool == null)
        {
            string dotFile = Path.ChangeExtension(output, ".dot");
            File.WriteAllText(dotFile, dot);
            stderr.WriteLine($"bpfjit cfg: Graphviz 'dot' is not on PATH: wrote {dotFile} instead of {output} (apt-get install graphviz; then dot -Tsvg {dotFile} -o {output})");
            return;
        }
        var start = new ProcessStartInfo(dotTool, ["-Tsvg", "-o", output])
        {
            RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new IOException($"could not start {dotTool}");
        process.StandardInput.Write(dot);
        process.StandardInput.Close();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new IOException($"{dotTool} failed (exit {process.ExitCode}): {errors.Trim()}");
        stdout.WriteLine($"wrote {output}");
    }

    static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);
}
