using System.Globalization;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>bpfjit plugin [MEM] [--interpret|--jit] [--elf]</c>: the bpf_conformance plugin contract
/// (../shared/conformance/README.md), called by <c>tools/bpf-conformance-plugin</c>. A hidden verb:
/// it is a protocol for that script, not for people, so the help does not list it.
/// </summary>
public static class PluginCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("plugin", "bpf_conformance plugin protocol (used by tools/bpf-conformance-plugin)", """
        usage: bpfjit plugin [MEM] [--interpret|--jit] [--elf]   (program hex on standard input)

        Implements the bpf_conformance runner's plugin contract: MEM is the input memory as hex bytes
        each followed by two spaces ("aa  bb  "), absent when there is none; standard input holds the
        program's bytes in the same hex encoding. Runs it with r1 = memory, r2 = its length and the
        suite's helpers, prints r0 in hex and exits 0; on any error prints it and exits non-zero.
          --interpret  run on the interpreter (default)
          --jit        run on the JIT
          --elf        standard input is an ELF object (not supported yet: exits 2)

        example:
          echo "b7  00  00  00  2a  00  00  00  95  00  00  00  00  00  00  00" | bpfjit plugin --jit
        """, Run, Hidden: true)
    {
        Operands = "MEM",
        Options =
        [
            Opt.Flag("--interpret", "run on the interpreter (the default)"),
            Opt.Flag("--jit", "run on the JIT"),
            Opt.Flag("--elf", "the program is an ELF object (not supported)"),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count > 1) throw new UsageException("at most one MEM argument");
        if (args.Has("--jit") && args.Has("--interpret")) throw new UsageException("--jit and --interpret exclude each other");
        if (args.Has("--elf"))
        {
            stderr.WriteLine("bpfjit plugin: ELF input (--elf) is not supported yet");
            return Cli.BadInput;
        }
        byte[] memory = args.Positional.Count == 1 ? ParseHex(args.Positional[0], "MEM") : [];
        byte[] code = ParseHex(Console.In.ReadToEnd(), "program");
        var program = ProgramFiles.FromBytes(code, "program");
        IBpfEngine engine = BpfEngines.Get(args.Has("--jit") ? BpfEngines.Jit : BpfEngines.Interpreter);
        var entry = engine.Prepare(program, HelperTable.Bench());
        ulong r0 = BpfJit.Runtime.Conformance.ConformanceRunner.RunWithMemory(entry, memory);
        stdout.WriteLine(r0.ToString("x", CultureInfo.InvariantCulture));
        return Cli.Ok;
    }

    /// <summary>Parses whitespace-separated hex bytes ("aa  bb  11  ").</summary>
    public static byte[] ParseHex(string text, string what)
    {
        var bytes = new List<byte>();
        foreach (var token in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            string t = token.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? token[2..] : token;
            if (t.Length is < 1 or > 2 || !byte.TryParse(t, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
                throw new BpfJit.Frontend.BpfException($"{what}: '{token}' is not a hex byte");
            bytes.Add(b);
        }
        return bytes.ToArray();
    }
}
