using BpfJit.Frontend;
using BpfJit.Frontend.Btf;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit btf OBJECT.o</c>: the object's BTF as C declarations (<c>bpftool btf dump file X format c</c>).</summary>
public static class BtfCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("btf", "print an object's BTF as C declarations (bpftool btf dump format c)", """
        usage: bpfjit btf OBJECT.o [--json]

        Prints the object's BTF types as a C header, as 'bpftool btf dump file OBJECT.o format c' does:
        every named struct, union, enum and typedef once, after the types it embeds, a forward
        declaration ('struct bpf_sock;') where a type is only pointed to or is part of a cycle, anonymous
        types inline, '__attribute__((packed))' where the layout shows it, explicit padding members where
        natural alignment does not explain a gap. The functions, variables and data sections follow in a
        comment after the header ('[12] FUNC int redir_port(struct bpf_sk_lookup *ctx); linkage global').
        --json prints {"file": "x.o", "types": 25, "c": "#ifndef __VMLINUX_H__ ..."}.
        Exit code 0, 2 when the object cannot be read or has no BTF.

        examples:
          bpfjit btf tests/programs/dispatcher.o
          bpfjit btf tests/programs/redir_port.o --json
        """, Run) { Operands = "OBJECT", Options = [Opt.Json()] };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no OBJECT given" : "give exactly one OBJECT");
        string path = args.Positional[0];
        var collection = BpfJit.Frontend.Elf.ObjectFile.Load(path);
        var btf = collection.Btf ?? throw new BpfException($"{path}: the object has no BTF (.BTF section)");
        string c = BtfCDumper.Dump(btf);
        if (args.Has("--json"))
        {
            Output.JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("file", path);
                w.WriteNumber("types", btf.Types.Count - 1);
                w.WriteString("c", c);
                w.WriteEndObject();
            });
            return Cli.Ok;
        }
        stdout.Write(c);
        return Cli.Ok;
    }
}
