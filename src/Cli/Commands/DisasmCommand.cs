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
    /// <summary>The verb's description, for <see cref="Cli"/>.</summary>
    public static CommandInfo Info { get; } = new("disasm", "disassemble the programs of an eBPF object file", """
        usage: bpfjit disasm OBJECT [--program NAME] [--source] [--opcodes] [--linum] [--json]

        Prints each program's instructions as loaded: subprograms linked after the program (each
        labelled with the section it came from), map references as map[idx:N] with the map's name.
        --program prints one program; --source (-S) puts the C source line from BTF line info before
        the instructions it produced, like llvm-objdump -S (needs an object compiled with -g).
        --opcodes prints the raw bytes of each instruction's slots under it (bpftool's 'opcodes');
        --linum names the source file and line of each line info, '@ file.c:NN' (bpftool's 'linum'),
        after the source line with --source, alone without it. The three combine.
        --json prints {"file": "x.o", "programs": [{"name", "section", "type", "instructions": [{"index": 0,
        "text": "r6 = r1", "function": "dispatcher" (at a function's first instruction, else absent),
        "map": "bindings" (ld_imm64 map references), "source": "C line", "file": "x.c", "line": 12 (when BTF
        has them), "opcodes": "61 12 3c 00 00 00 00 00" (8 bytes a slot, 16 for ld_imm64)}]}]}.
        Exit code 0, or 2 with one line on stderr for bad usage, an unknown program or a bad object.

        examples:
          bpfjit disasm tests/programs/redir_port.o
          bpfjit disasm tests/programs/subprog_calls.o --program subprog_hash --source
          bpfjit disasm tests/programs/dispatcher.o --json
          bpfjit disasm tests/programs/redir_port.o --source --linum --opcodes
        """, Run)
    {
        Operands = "OBJECT",
        Options =
        [
            Opt.Value("--program", "NAME", "print this program only"),
            Opt.Flag("--source", "the C source line before the instructions it produced (BTF line info)", "-S"),
            Opt.Flag("--opcodes", "the raw bytes of each instruction"),
            Opt.Flag("--linum", "the source file and line of each line info, '@ file.c:NN'"),
            Opt.Json(),
        ],
    };

    /// <summary>Runs the command; returns 0 on success and 2 on bad usage or a bad object.</summary>
    public static int Run(Args a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Positional.Count == 0) throw new UsageException("no OBJECT given");
        if (a.Positional.Count > 1) throw new UsageException($"unexpected argument '{a.Positional[1]}'");
        var spec = ObjectFile.Load(a.Positional[0]);
        IEnumerable<ProgramSpec> programs = spec.Programs;
        if (a.Get("--program") is string name)
        {
            if (!spec.Programs.TryGet(name, out var p))
            {
                stderr.WriteLine($"bpfjit disasm: {spec.FileName}: no program named '{name}' (programs: {string.Join(", ", spec.Programs.Select(x => x.Name))})");
                return Cli.BadInput;
            }
            programs = [p];
        }
        if (a.Has("--json"))
        {
            WriteJson(spec.FileName, programs, stdout);
            return Cli.Ok;
        }
        bool first = true;
        foreach (var p in programs)
        {
            if (!first) stdout.WriteLine();
            first = false;
            Write(p, a.Has("--source"), a.Has("--linum"), a.Has("--opcodes"), stdout);
        }
        return Cli.Ok;
    }

    static void WriteJson(string file, IEnumerable<ProgramSpec> programs, TextWriter o) => Output.JsonOutput.Write(o, w =>
    {
        w.WriteStartObject();
        w.WriteString("file", file);
        w.WriteStartArray("programs");
        foreach (var p in programs)
        {
            w.WriteStartObject();
            w.WriteString("name", p.Name);
            w.WriteString("section", p.SectionName);
            w.WriteString("type", p.Type.ToString());
            var starts = p.Functions.ToDictionary(f => f.InstructionIndex);
            var refs = p.MapReferences.ToDictionary(r => r.InstructionIndex);
            w.WriteStartArray("instructions");
            for (int i = 0; i < p.Instructions.Length; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("index", i);
                w.WriteString("text", Disassembler.Format(p.Instructions, i));
                if (starts.TryGetValue(i, out var fn)) w.WriteString("function", fn.Name);
                if (refs.TryGetValue(i, out var r)) w.WriteString("map", r.MapName);
                if (KernelFunction(p, i) is { } kfunc) w.WriteString("kfunc", kfunc);
                if (p.LineInfoAt(i) is { } line)
                {
                    if (line.Line.Length > 0) w.WriteString("source", line.Line.Trim());
                    w.WriteString("file", line.FileName);
                    w.WriteNumber("line", line.LineNumber);
                }
                w.WriteString("opcodes", Opcodes(p.Instructions, i));
                w.WriteEndObject();
                if (p.Instructions[i].IsLdImm64) i++;
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>The kernel function a kfunc call at slot <paramref name="i"/> names (the loader's <see cref="ProgramSpec.KernelFunctions"/>), or null.</summary>
    static string? KernelFunction(ProgramSpec p, int i)
    {
        var ins = p.Instructions[i];
        return ins.IsCall && ins.Src == (byte)CallKind.Kfunc && ins.Imm >= 0 && ins.Imm < p.KernelFunctions.Count ? p.KernelFunctions[ins.Imm] : null;
    }

    /// <summary>The bytes of the slot(s) of the instruction at <paramref name="i"/>, as bpftool prints them (two for ld_imm64).</summary>
    static string Opcodes(Instruction[] code, int i)
    {
        byte[] bytes = Encoder.Encode(code.AsSpan(i, code[i].IsLdImm64 && i + 1 < code.Length ? 2 : 1));
        return string.Join(' ', bytes.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
    }

    static void Write(ProgramSpec p, bool source, bool linum, bool opcodes, TextWriter o)
    {
        o.WriteLine($"program {p.Name} (section {p.SectionName}, type {p.Type}{(p.IsSupported ? "" : ", unsupported")}), {p.Instructions.Length} instructions:");
        var starts = p.Functions.ToDictionary(f => f.InstructionIndex);
        var refs = p.MapReferences.ToDictionary(r => r.InstructionIndex);
        BtfLineInfo? lastLine = null;
        for (int i = 0; i < p.Instructions.Length; i++)
        {
            if (starts.TryGetValue(i, out var fn))
                o.WriteLine(i == 0 ? $"<{fn.Name}>:" : $"\n<{fn.Name}>: ; from {fn.SectionName}");
            if ((source || linum) && p.LineInfoAt(i) is { } line && (lastLine == null || line.LineNumber != lastLine.LineNumber || line.FileName != lastLine.FileName))
            {
                string where = linum ? $" @ {Path.GetFileName(line.FileName)}:{line.LineNumber}" : "";
                o.WriteLine(source ? $"; {line.Line.Trim()}{where}" : $";{where}");
                lastLine = line;
            }
            string text = Disassembler.Format(p.Instructions, i);
            if (refs.TryGetValue(i, out var r))
                text += r.Kind == MapReferenceKind.Map ? $"  ; map {r.MapName}" : $"  ; {r.SymbolName} in {r.MapName}+{r.ValueOffset}";
            if (KernelFunction(p, i) is { } kfunc) text += $"  ; kfunc {kfunc}";
            o.WriteLine($"{i,5}: {text}");
            if (opcodes) o.WriteLine($"       {Opcodes(p.Instructions, i)}");
            if (p.Instructions[i].IsLdImm64) i++;
        }
        if ((source || linum) && p.LineInfos.Count == 0)
            o.WriteLine("; (no line info: compile with -g for source lines)");
    }
}
