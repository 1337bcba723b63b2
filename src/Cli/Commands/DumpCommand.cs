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

        Compiles PROGRAM with the JIT (helpers of the conformance/bench machine model) and shows what
        it emitted, read back from a saved assembly built by the same emitter that makes the running
        code. PROGRAM is a bpf_conformance .data file, raw little-endian bytecode (.bin), or an eBPF
        ELF object (--program NAME picks one of its programs; default the first). Programs that use
        maps cannot be compiled until their maps are bound: they are refused with exit code 2.
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
          bpfjit dump ../shared/bench/straight.data --il
          bpfjit dump ../shared/conformance/call_local.data --cs
          bpfjit dump prog.bin --dll out/prog.dll
          bpfjit dump ../shared/bench/straight.data --json
        """, Run);

    static int Run(string[] argv, TextWriter stdout, TextWriter stderr)
    {
        var args = new Args(argv, ["--dll", "--program"], ["--il", "--cs", "--no-zero-stack", "--json"]);
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no PROGRAM given" : "give exactly one PROGRAM");
        var program = ProgramFiles.Load(args.Positional[0], args.Get("--program"));
        var options = JitOptions.Default with { ZeroStack = !args.Has("--no-zero-stack") };
        var compiled = JitCompiler.Compile(program, HelperTable.Bench(), options);
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
}

/// <summary>Reads a program from a file: a conformance <c>.data</c> file or raw bytecode (<c>.bin</c>).</summary>
public static class ProgramFiles
{
    /// <summary>Loads the program slots of <paramref name="path"/> (<paramref name="program"/> names one program of an ELF object); bad input raises a <see cref="BpfException"/>.</summary>
    public static Instruction[] Load(string path, string? program = null)
    {
        if (!File.Exists(path)) throw new BpfException($"{path}: no such file");
        if (IsElf(File.ReadAllBytes(path)))
        {
            var spec = ObjectFile.Load(path);
            ProgramSpec? chosen = null;
            if (program == null) chosen = spec.Programs.FirstOrDefault();
            else if (spec.Programs.TryGet(program, out var p)) chosen = p;
            return chosen?.Instructions ?? throw new BpfException(
                $"{path}: no program {(program == null ? "in the object" : $"named '{program}'")} (programs: {string.Join(", ", spec.Programs.Select(x => x.Name))})");
        }
        if (program != null) throw new BpfException($"{path}: --program applies to ELF objects only");
        if (path.EndsWith(".data", StringComparison.OrdinalIgnoreCase))
        {
            var test = ConformanceFile.Load(path);
            return test.Program ?? throw new BpfException($"{path}: no program in the file ({test.SkipReason ?? "no asm or raw section"})");
        }
        if (Path.GetExtension(path).ToLowerInvariant() is ".asm" or ".s")
        {
            try { return Assembler.Assemble(File.ReadAllText(path)); }
            catch (BpfAssemblerException e) { throw new BpfException($"{path}: {e.Message}", e); }
        }
        byte[] bytes = File.ReadAllBytes(path);
        return FromBytes(bytes, path);
    }

    static bool IsElf(byte[] bytes) => bytes.Length >= 4 && bytes[0] == 0x7f && bytes[1] == (byte)'E' && bytes[2] == (byte)'L' && bytes[3] == (byte)'F';

    /// <summary>Decodes raw little-endian bytecode; ELF images are recognised and refused.</summary>
    public static Instruction[] FromBytes(byte[] bytes, string name)
    {
        if (IsElf(bytes))
            throw new BpfException($"{name}: ELF input is not supported here yet (give raw bytecode)");
        try
        {
            return Decoder.Decode(bytes);
        }
        catch (BpfDecodeException e)
        {
            throw new BpfException($"{name}: {e.Message}", e);
        }
    }
}
