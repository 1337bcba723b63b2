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
        usage: bpfjit dump PROGRAM [--il] [--cs] [--xlated] [--native] [--dll OUT.dll] [--no-zero-stack] [--program NAME]
                           [--map NAME:KEY:VALUE:ENTRIES,...] [--type sk_lookup|sk_reuseport]

        Compiles PROGRAM with the JIT and shows what it emitted, read back from a saved assembly built
        by the same emitter that makes the running code. PROGRAM is a bpf_conformance .data file or raw
        little-endian bytecode (.bin), compiled with the helpers of the conformance/bench machine model,
        or an eBPF ELF object: its SK_LOOKUP program (--program NAME picks one; default the first) is
        loaded as the runtime loads it — maps created from the object, verified, bound, ctx loads
        rewritten — and compiled specialised with the verifier's facts. Notes under an instruction
        ('; fact: divisor non-zero, check removed', '; ctx load local_port', '; ARRAY lookup inlined')
        say where a fact changed the code. --map gives sizes to object maps the object leaves open (tubular's
        zero-sized 'destinations'), as a scenario's map_definitions do. --type sk_lookup|sk_reuseport makes an .asm
        or .bin file a program of that type, without maps: verified as the type (a rejection is exit 2), its
        ctx loads rewritten and compiled with the verifier's facts, as 'bpfjit run --type' runs it.
          --il     the IL, each block preceded by its eBPF instruction: '; 5: r0 = *(u32 *)(r1 + 8)'
                   (the default when no other output is asked for)
          --cs     the method decompiled to C# (ICSharpCode.Decompiler)
          --xlated the eBPF program as the engine compiles it (an object's program only), as
                   'bpftool prog dump xlated' shows the kernel's: maps bound ('r1 = map[redir_map] ll'),
                   ctx loads rewritten, dead code marked ('; dead: no path reaches it, not compiled'),
                   and per instruction the register types the verifier proved before it and the facts
                   the JIT uses ('; r1=ctx r10=fp ; ctx load local_port')
          --native the machine code RyuJIT made of the method in this process, disassembled (x86-64 by
                   Iced, arm64 by Capstone), as 'bpftool prog dump jited linum' shows the kernel JIT's:
                   offset, bytes, instruction, each group under the eBPF slots it comes from
                   ('; 5: if r1 != 0x1b5f goto +17'), from the runtime's IL-to-native map of the same IL
                   compiled as an ordinary method under an EventPipe session on this process (the second
                   line says so, or why not: DOTNET_EnableDiagnostics=0 turns the session off)
          --dll    write the assembly (type BpfJit.Dump.BpfProgram, method Run) to OUT.dll
          --no-zero-stack  compile as a verifier-approved program would be: stack not zeroed
          --json   one object: {"program": "x.data", "slots": 12, "il": {"header": ["..."], "blocks":
                   [{"slot": 0, "comment": "r0 = 1", "il": ["IL_0015: ldc.i8 1", ...]}]},
                   "cs": "..." (with --cs), "dll": "out.dll" (with --dll)}; a block whose comment is
                   not an instruction (the prologue) has "slot": null; with --xlated "xlated": [{"slot": 0,
                   "opcode": "bf", "text": "r7 = r1", "dead": false, "registers": {"r1": "ctx", "r10": "fp"},
                   "notes": []}]; with --native "native": {"arch": "x86-64", "bytes": 304, "listing": [...],
                   "interleaved": true, "note": "...", "instructions": [{"offset": 15, "slots": [3, 4]},
                   {"offset": 0, "slots": [], "part": "prolog"}, ...]}
        Exit code 0 on success, 2 when the program cannot be read or compiled.

        examples:
          bpfjit dump tests/programs/redir_port.o --program redir_port --il
          bpfjit dump tests/programs/dispatcher.o --il --map destinations:257:8:1024
          bpfjit dump examples/asm/ipv4_in_subnet.data --il
          bpfjit dump ../shared/conformance/call_local.data --cs
          bpfjit dump examples/prog.bin --dll out/prog.dll
          bpfjit dump examples/asm/ipv4_in_subnet.data --json
          bpfjit dump tests/programs/redir_port.o --xlated
          bpfjit dump tests/programs/redir_port.o --native
        """, Run)
    {
        Operands = "PROGRAM",
        Options =
        [
            Opt.Flag("--il", "the IL, each block under its eBPF instruction (the default)"),
            Opt.Flag("--cs", "the method decompiled to C#"),
            Opt.Flag("--xlated", "the eBPF program as the engine compiles it (an object's program)"),
            Opt.Flag("--native", "the machine code RyuJIT made of it, disassembled, under its eBPF slots"),
            Opt.Value("--dll", "OUT.dll", "write the assembly to OUT.dll"),
            Opt.Flag("--no-zero-stack", "compile as a verifier-approved program: stack not zeroed"),
            Opt.Value("--program", "NAME", "the object's program (default the first SK_LOOKUP one)"),
            Hosting.MapSizeOption.Option,
            Hosting.ReuseportGroupSetup.DeclareType(),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no PROGRAM given" : "give exactly one PROGRAM");
        var options = JitOptions.Default with { ZeroStack = !args.Has("--no-zero-stack") };
        string path = args.Positional[0];
        if (args.Has("--map") && !ProgramFiles.IsElfFile(path)) throw new UsageException("--map applies to ELF objects only");
        if (args.Has("--xlated") && !ProgramFiles.IsElfFile(path)) throw new UsageException("--xlated needs an ELF object (its program is loaded as the runtime loads it)");
        var fileType = Hosting.ReuseportGroupSetup.FileType(args, path);
        using var loaded = ProgramFiles.IsElfFile(path) ? VerifiedObjectProgram.Load(path, args.Get("--program"), args.Get(Hosting.MapSizeOption.Name)) : null;
        var compiled = loaded != null ? JitCompiler.Compile(loaded.Code, loaded.Helpers, options, loaded.Facts)
            : args.Has("--type") ? CompileTyped(path, fileType, options)
            : JitCompiler.Compile(ProgramFiles.Load(path, args.Get("--program")), HelperTable.Bench(), options);
        bool il = args.Has("--il") || !(args.Has("--cs") || args.Has("--dll") || args.Has("--xlated") || args.Has("--native"));
        // The register types come from the object's own verification; the facts the JIT uses from the load above.
        var xlated = loaded != null && args.Has("--xlated")
            ? Output.XlatedListing.Build(loaded, BpfJit.Verifier.ObjectVerification.Verify(loaded.Collection, loaded.Spec, loaded.Helpers))
            : null;
        var native = args.Has("--native") ? Output.NativeDump.Read(compiled) : null;
        if (args.Has("--json")) return Output.DumpJson.Write(args, compiled, il, stdout, xlated, native);
        if (native != null)
        {
            // Offsets and branch targets from the method's start; the address is this process's.
            stdout.WriteLine($"; native code of {(loaded?.Name ?? Path.GetFileName(path))}: {native.Code.Length} bytes of {Output.NativeListing.Arch} by RyuJIT at 0x{native.Address:x} in this process");
            stdout.WriteLine($"; {native.Note}");
            string listing = Output.NativeListing.Listing(0, native.Code);
            stdout.Write(native.Origins == null ? listing : Output.NativeSlotMap.Interleave(listing, native.Origins, compiled.Program.ToArray()));
            if (xlated != null || il || args.Has("--cs")) stdout.WriteLine();
        }
        if (xlated != null)
        {
            Output.XlatedListing.WriteText(loaded!.Name, xlated, loaded.Code.Length, stdout);
            if (il || args.Has("--cs")) stdout.WriteLine();
        }
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

    // A program file of an SK_LOOKUP or SK_REUSEPORT program (--type): verified as the type, then compiled as its
    // engines get it (ctx loads rewritten as the program's own Load does) with the verifier's facts.
    static CompiledProgram CompileTyped(string path, ProgramType type, JitOptions options)
    {
        string name = Path.GetFileNameWithoutExtension(path);
        var code = ProgramFiles.Load(path);
        var helpers = Hosting.ReuseportGroupSetup.Helpers(type);
        var spec = new ProgramSpec(name, type == ProgramType.SkReuseport ? "sk_reuseport" : "sk_lookup", type,
            type == ProgramType.SkReuseport ? AttachType.SkReuseportSelect : AttachType.SkLookup, code);
        ProgramFacts facts;
        try { facts = new BpfJit.Verifier.SkLookupProgramVerifier().VerifyWithFacts(spec, [], helpers); }
        catch (BpfException e) { throw new BpfException($"{path}: {e.Message}", e); }
        if (type != ProgramType.SkReuseport) return JitCompiler.Compile(BpfJit.Runtime.SkLookup.CtxLoadRewriter.Rewrite(code), helpers, options, facts);
        using var program = BpfJit.Runtime.SkReuseport.SkReuseportProgram.Load(name, code, BpfEngines.Get("interpreter"), helpers, facts);
        return JitCompiler.Compile(program.Instructions, helpers, options, facts);
    }
}
