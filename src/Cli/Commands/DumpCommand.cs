using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit dump PROGRAM [--il] [--cs] [--dll OUT.dll]</c></summary>
public static class DumpCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("dump", "show the IL or C# the JIT emits for a program, or save it as a DLL", """
        usage: bpfjit dump PROGRAM [--il] [--cs] [--dll OUT.dll] [--no-zero-stack] [--program NAME]
                           [--map NAME:KEY:VALUE:ENTRIES,...]

        Compiles PROGRAM with the JIT and shows what it emitted, read back from a saved assembly built
        by the same emitter that makes the running code. PROGRAM is a bpf_conformance .data file or raw
        little-endian bytecode (.bin), compiled with the helpers of the conformance/bench machine model,
        or an eBPF ELF object: its SK_LOOKUP program (--program NAME picks one; default the first) is
        loaded as the runtime loads it — maps created from the object, verified, bound, ctx loads
        rewritten — and compiled specialised with the verifier's facts. Notes under an instruction
        ('; fact: divisor non-zero, check removed', '; ctx load local_port', '; ARRAY lookup inlined')
        say where a fact changed the code. --map gives sizes to object maps the object leaves open (tubular's
        zero-sized 'destinations'), as a scenario's map_definitions do.
          --il     the IL, each block preceded by its eBPF instruction: '; 5: r0 = *(u32 *)(r1 + 8)'
                   (the default when no other output is asked for)
          --cs     the method decompiled to C# (ICSharpCode.Decompiler)
          --dll    write the assembly (type BpfJit.Dump.BpfProgram, method Run) to OUT.dll
          --no-zero-stack  compile as a verifier-approved program would be: stack not zeroed
          --json   one object: {"program": "x.data", "slots": 12, "il": {"header": ["..."], "blocks":
                   [{"slot": 0, "comment": "r0 = 1", "il": ["IL_0015: ldc.i8 1", ...]}]},
                   "cs": "..." (with --cs), "dll": "out.dll" (with --dll)}; a block whose comment is
                   not an instruction (the prologue) has "slot": null
        Exit code 0 on success, 2 when the program cannot be read or compiled.

        examples:
          bpfjit dump tests/programs/redir_port.o --program redir_port --il
          bpfjit dump tests/programs/dispatcher.o --il --map destinations:257:8:1024
          bpfjit dump examples/asm/ipv4_in_subnet.data --il
          bpfjit dump ../shared/conformance/call_local.data --cs
          bpfjit dump examples/prog.bin --dll out/prog.dll
          bpfjit dump examples/asm/ipv4_in_subnet.data --json
        """, Run);

    static int Run(string[] argv, TextWriter stdout, TextWriter stderr)
    {
        var args = new Args(argv, ["--dll", "--program", "--map"], ["--il", "--cs", "--no-zero-stack", "--json"]);
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no PROGRAM given" : "give exactly one PROGRAM");
        var options = JitOptions.Default with { ZeroStack = !args.Has("--no-zero-stack") };
        string path = args.Positional[0];
        if (args.Has("--map") && !ProgramFiles.IsElfFile(path)) throw new UsageException("--map applies to ELF objects only");
        using var loaded = ProgramFiles.IsElfFile(path) ? VerifiedObjectProgram.Load(path, args.Get("--program"), MapSizes(args.Get("--map"))) : null;
        var compiled = loaded != null
            ? JitCompiler.Compile(loaded.Code, loaded.Helpers, options, loaded.Facts)
            : JitCompiler.Compile(ProgramFiles.Load(path, args.Get("--program")), HelperTable.Bench(), options);
        bool il = args.Has("--il") || !(args.Has("--cs") || args.Has("--dll"));
        if (args.Has("--json")) return Output.DumpJson.Write(args, compiled, il, stdout);
        if (il) stdout.Write(compiled.GetIlListing());
        if (args.Has("--cs"))
        {
            if (il) stdout.WriteLine();
            stdout.Write(compiled.GetCSharp());
        }
        if (args.Get("--dll") is { } dll)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(dll));
            if (dir != null) Directory.CreateDirectory(dir);
            compiled.SaveAssembly(dll);
            stderr.WriteLine($"wrote {dll}");
        }
        return Cli.Ok;
    }

    /// <summary>Parses <c>NAME:KEY:VALUE:ENTRIES,...</c>.</summary>
    static Dictionary<string, (int Key, int Value, int Entries)> MapSizes(string? text)
    {
        var sizes = new Dictionary<string, (int, int, int)>();
        if (string.IsNullOrEmpty(text)) return sizes;
        foreach (var item in text.Split(','))
        {
            var f = item.Split(':');
            if (f.Length != 4 || !int.TryParse(f[1], out int key) || !int.TryParse(f[2], out int value) || !int.TryParse(f[3], out int entries))
                throw new UsageException($"--map {item}: expected NAME:KEY:VALUE:ENTRIES");
            sizes[f[0]] = (key, value, entries);
        }
        return sizes;
    }
}
