using BpfJit.Frontend;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;

namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>bpfjit disasm OBJECT [--program NAME] [--source]</c>: prints each program's linked instructions,
/// with the C source line before the instructions it produced when <c>--source</c> is given and the
/// object has BTF line info (like <c>llvm-objdump -S</c>).
/// </summary>
public static class DisasmCommand
{
    /// <summary>The usage line.</summary>
    public const string Usage = "usage: bpfjit disasm OBJECT [--program NAME] [--source]";

    /// <summary>Runs the command; returns 0 on success and 2 on bad usage or a bad object.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? path = null, program = null;
        bool source = false;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg == "--source" || arg == "-S") source = true;
            else if (arg == "--program" || arg == "-p")
            {
                if (i + 1 >= args.Length) return CommandErrors.Usage(stderr, Usage, $"{arg} needs a program name");
                program = args[++i];
            }
            else if (arg.StartsWith("--program=", StringComparison.Ordinal)) program = arg["--program=".Length..];
            else if (arg is "-h" or "--help") { stdout.WriteLine(Usage); return 0; }
            else if (arg.StartsWith('-')) return CommandErrors.Usage(stderr, Usage, $"unknown option '{arg}'");
            else if (path == null) path = arg;
            else return CommandErrors.Usage(stderr, Usage, $"unexpected argument '{arg}'");
        }
        if (path == null) return CommandErrors.Usage(stderr, Usage, "missing OBJECT");

        CollectionSpec spec;
        try { spec = ObjectFile.Load(path); }
        catch (BpfException e) { return CommandErrors.Fail(stderr, e); }

        IEnumerable<ProgramSpec> programs = spec.Programs;
        if (program != null)
        {
            if (!spec.Programs.TryGet(program, out var p))
            {
                stderr.WriteLine($"error: {spec.FileName}: no program named '{program}' (programs: {string.Join(", ", spec.Programs.Select(x => x.Name))})");
                return CommandErrors.BadInput;
            }
            programs = [p];
        }

        bool first = true;
        foreach (var p in programs)
        {
            if (!first) stdout.WriteLine();
            first = false;
            Write(spec, p, source, stdout);
        }
        return 0;
    }

    static void Write(CollectionSpec spec, ProgramSpec p, bool source, TextWriter o)
    {
        o.WriteLine($"program {p.Name} (section {p.SectionName}, type {p.Type}{(p.IsSupported ? "" : ", unsupported")}), {p.Instructions.Length} instructions:");
        var starts = p.Functions.ToDictionary(f => f.InstructionIndex);
        var refs = p.MapReferences.ToDictionary(r => r.InstructionIndex);
        BtfLineInfo? lastLine = null;
        for (int i = 0; i < p.Instructions.Length; i++)
        {
            if (starts.TryGetValue(i, out var fn))
                o.WriteLine(i == 0 ? $"<{fn.Name}>:" : $"\n<{fn.Name}>: ; from {fn.SectionName}");
            if (source && p.LineInfoAt(i) is { } line && (lastLine == null || line.LineNumber != lastLine.LineNumber || line.FileName != lastLine.FileName))
            {
                o.WriteLine($"; {line.Line.Trim()}");
                lastLine = line;
            }
            string text = Disassembler.Format(p.Instructions, i);
            if (refs.TryGetValue(i, out var r))
                text += r.Kind == MapReferenceKind.Map ? $"  ; map {r.MapName}" : $"  ; {r.SymbolName} in {r.MapName}+{r.ValueOffset}";
            o.WriteLine($"{i,5}: {text}");
            if (p.Instructions[i].IsLdImm64) i++;
        }
        if (source && p.LineInfos.Count == 0)
            o.WriteLine("; (no line info: compile with -g for source lines)");
    }
}
