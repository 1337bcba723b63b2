using System.Globalization;
using BpfJit.Cli.Hosting;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.Runtime;
using BpfJit.Verifier;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit verify FILE [--type sk_lookup|sk_reuseport] [--log 1|2|4|5|6] [--maps SPEC,...]</c></summary>
public static class VerifyCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("verify", "check a program with the static verifier (kernel-style log)", """
        usage: bpfjit verify OBJECT.o [--program NAME] [--map NAME:KEY:VALUE:ENTRIES,...] [--log 1|2|4|5|6] [--json]
               bpfjit verify FILE [--type sk_lookup|sk_reuseport] [--log 1|2|4|5|6] [--maps NAME:TYPE:KEY:VALUE:ENTRIES[:ro],...]

        Verifies an SK_LOOKUP or SK_REUSEPORT program the way the Linux kernel does for a privileged loader, and
        prints the verifier log: level 1 the error with its instruction, level 2 every instruction
        with the register and stack state (R1=ctx() R10=fp0 fp-8=mmmmmmmm), level 4 the kernel's
        statistics ('verification time N usec', 'stack depth 8+16' per subprogram, 'processed N insns
        (limit 1000000) max_states_per_insn M total_states T peak_states P mark_read 0'). Levels are the kernel's bits
        and combine as its log_level does: 5 = 1|4, 6 = 2|4.
        OBJECT.o is an ELF object built by clang -target bpf: every SK_LOOKUP and SK_REUSEPORT program in it
        (or the one --program names) is verified against the object's own map definitions, and an error names
        the C source line when the object has BTF line info; each other program is named on a line
        'skipped program NAME: section S, type T: why' (in --json, the "skipped" list). First the object's
        maps get the checks a load makes when it creates them (BPF_MAP_CREATE's, without allocating): a map the
        kernel refuses fails the object before any program is verified, as libbpf's bpf_object__load does, with
        one line naming the file, the map and the field (exit 2). --map gives sizes to maps the object leaves
        open (tubular's zero-sized 'destinations'), as a loader sets them before the load.
        --type gives the program type of a FILE (default sk_lookup).
        FILE is a bpf_conformance .data file, an assembly file (.asm/.s/.txt, conformance syntax)
        or raw instructions (.bin/.o-less bytecode, 8 bytes per slot, little-endian).
        Map references (ld_imm64 with src 1/5 for a map, 2/6 for a value) index the --maps list;
        TYPE is a name (HASH, ARRAY, SOCKMAP, ...) or the kernel's number.
        --json prints {"file": "x.o", "programs": [{"name": "dispatcher", "accepted": true, "error": null,
        "errorInsn": null, "insnsProcessed": 281, "stackDepths": [28], "mayReadUninitStack": false,
        "stats": {"verificationTimeUsec": 98476, "insnsProcessed": 281, "maxStatesPerInsn": 3, "totalStates": 20,
        "peakStates": 20, "markRead": 0}, "log": "..."}]} (the log at the --log level; stats at every level).
        Exit code 0 when accepted, 1 when rejected (log on stdout), 2 on bad input.

        examples:
          bpfjit verify tests/programs/dispatcher.o --map destinations:257:8:1024
          bpfjit verify tests/programs/redir_port.o --program redir_port --log 2
          bpfjit verify tests/programs/redir_port.o --log 4
          bpfjit verify tests/programs/dispatcher.o --map destinations:257:8:1024 --log 6
          bpfjit verify examples/prog.asm
          bpfjit verify tests/programs/dispatcher.o --map destinations:257:8:1024 --json
          bpfjit verify examples/prog.bin --log 2 --maps socks:SOCKMAP:4:8:32,metrics:PERCPU_ARRAY:4:24:1024
        """, Run)
    {
        Operands = "FILE",
        Options =
        [
            Opt.Value("--program", "NAME", "the object's program to verify (default every one)"),
            Opt.Value("--log", "LEVEL", "the kernel's log_level: 1, 2, 4 or their sums 5, 6", "1", "2", "4", "5", "6"),
            Opt.Value("--type", "TYPE", "the program type of a FILE: sk_lookup (default) or sk_reuseport", "sk_lookup", "sk_reuseport"),
            Opt.Value("--maps", "NAME:TYPE:KEY:VALUE:ENTRIES[:ro],...", "the maps a FILE's program uses"),
            MapSizeOption.Option,
            Opt.Json(),
        ],
    };

    /// <summary>
    /// The helper registry calls are checked against: the runtime's SK_LOOKUP table by default, so the
    /// verifier reads the same prototypes the helpers are defined with.
    /// </summary>
    public static HelperTable Helpers { get; set; } = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException("exactly one FILE is needed");
        var type = BpfJit.Frontend.Elf.SectionNames.Classify(args.Choice("--type", "sk_lookup", "sk_lookup", "sk_reuseport")).Type;
        int level = LogLevel(args.Get("--log", "1")!);
        string path = args.Positional[0];
        bool json = args.Has("--json");
        if (ProgramFiles.IsElfFile(path)) return VerifyObject(path, args.Get("--program"), args.Get(MapSizeOption.Name), level, json, stdout);
        if (args.Has("--program")) throw new UsageException("--program needs an object file");
        if (args.Has(MapSizeOption.Name)) throw new UsageException($"{MapSizeOption.Name} needs an object file (a FILE's maps are --maps)");
        var program = ProgramFiles.Load(path);
        var maps = ParseMaps(args.Get("--maps", "")!);
        var result = Verifier.Verifier.Verify(program, new VerifierOptions { Helpers = Helpers, Maps = maps, LogLevel = level, ProgramType = type });
        if (json)
        {
            WriteJson(path, [(Path.GetFileNameWithoutExtension(path), result)], stdout);
            return result.Accepted ? Cli.Ok : Cli.Negative;
        }
        stdout.Write(result.Log);
        if (!result.Accepted) return Cli.Negative;
        if (result.MayReadUninitStack) stdout.WriteLine("note: some path may read uninitialised stack; the JIT zeroes the frame");
        return Cli.Ok;
    }

    /// <summary>
    /// Verifies the programs of an object whose types BpfJit supports (SK_LOOKUP, SK_REUSEPORT), or the one named; names
    /// each program it skips, with its section, type and why. Exit 1 when any is rejected. The object's maps (sized by
    /// <paramref name="mapSizes"/>, <c>--map</c>) are checked first as a load creates them: one BPF_MAP_CREATE refuses
    /// fails the object before any program is verified, as libbpf's bpf_object__load does.
    /// </summary>
    static int VerifyObject(string path, string? name, string? mapSizes, int level, bool json, TextWriter stdout)
    {
        var collection = BpfJit.Frontend.Elf.ObjectFile.Load(path);
        MapSizeOption.Apply(mapSizes, collection, path);
        var programs = collection.Programs.Where(p => name == null ? p.IsSupported : p.Name == name).ToList();
        if (name != null && programs.Count == 0)
            throw new BpfException($"{path}: no program named '{name}' (programs: {string.Join(", ", collection.Programs.Select(p => p.Name))})");
        var skipped = name == null ? collection.Programs.Where(p => !p.IsSupported).ToList() : [];
        if (programs.Count == 0)
            throw new BpfException($"{path}: no SK_LOOKUP or SK_REUSEPORT program in the object{string.Concat(skipped.Select(p => "\n" + SkipLine(p)))}");
        ObjectLoading.ValidateMaps(path, collection, MapSizeOption.Hint);
        int rejected = 0;
        var results = new List<(string, VerifierResult)>();
        foreach (var program in programs)
        {
            if (!program.IsSupported)
                throw new BpfException($"{path}: section {program.SectionName}: program {program.Name}: program type {program.Type} is not supported (only sk_lookup)");
            var result = ObjectVerification.Verify(collection, program, Helpers, level);
            results.Add((program.Name, result));
            if (!result.Accepted) rejected++;
            if (json) continue;
            if (programs.Count > 1 || (level & 2) != 0) stdout.WriteLine($"program {program.Name} (section {program.SectionName}, {program.Instructions.Length} insns):");
            stdout.Write(result.Log);
        }
        if (json) WriteJson(path, results, stdout, skipped);
        else foreach (var p in skipped) stdout.WriteLine(SkipLine(p));
        return rejected > 0 ? Cli.Negative : Cli.Ok;
    }

    /// <summary>One line for a program not verified: <c>skipped program NAME: section S, type T: why</c>.</summary>
    static string SkipLine(BpfJit.Frontend.Elf.ProgramSpec p) => $"skipped program {p.Name}: section {p.SectionName}, type {p.Type}: {SkipReason(p)}";

    static string SkipReason(BpfJit.Frontend.Elf.ProgramSpec p) =>
        p.Type == BpfJit.Frontend.Elf.ProgramType.Unspec ? "the section names no known program type"
        : p.AttachType is { } a && p.Type is BpfJit.Frontend.Elf.ProgramType.SkLookup or BpfJit.Frontend.Elf.ProgramType.SkReuseport
            ? $"expected attach type {a} is not one of the type's"
            : "program type not supported by BpfJit (only SkLookup and SkReuseport)";

    /// <summary>
    /// The kernel's log_level: bits 1 (instructions), 2 (states), 4 (statistics), combined as numbers (5 = 1|4,
    /// 6 = 2|4); 0 and bits outside the mask are refused as bpf_verifier_log_attr_valid refuses them.
    /// </summary>
    static int LogLevel(string text)
    {
        const int mask = 7;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int level) || level == 0 || (level & ~mask) != 0)
            throw new UsageException($"--log must be 1, 2 or 4 or a sum of them (5 = 1|4, 6 = 2|4), not '{text}'");
        return level;
    }

    static void WriteJson(string path, IEnumerable<(string Name, VerifierResult Result)> results, TextWriter o,
        IReadOnlyList<BpfJit.Frontend.Elf.ProgramSpec>? skipped = null) => Output.JsonOutput.Write(o, w =>
    {
        w.WriteStartObject();
        w.WriteString("file", path);
        w.WriteStartArray("programs");
        foreach (var (name, r) in results)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteBoolean("accepted", r.Accepted);
            if (r.Error != null) w.WriteString("error", r.Error); else w.WriteNull("error");
            if (r.Accepted) w.WriteNull("errorInsn"); else w.WriteNumber("errorInsn", r.ErrorInsn);
            w.WriteNumber("insnsProcessed", r.InsnsProcessed);
            w.WriteStartArray("stackDepths");
            foreach (int d in r.StackDepths) w.WriteNumberValue(d);
            w.WriteEndArray();
            w.WriteBoolean("mayReadUninitStack", r.MayReadUninitStack);
            // print_verification_stats's figures, whatever the log level.
            w.WriteStartObject("stats");
            w.WriteNumber("verificationTimeUsec", (long)r.Stats.VerificationTime.TotalMicroseconds);
            w.WriteNumber("insnsProcessed", r.Stats.InsnsProcessed);
            w.WriteNumber("maxStatesPerInsn", r.Stats.MaxStatesPerInsn);
            w.WriteNumber("totalStates", r.Stats.TotalStates);
            w.WriteNumber("peakStates", r.Stats.PeakStates);
            w.WriteNumber("markRead", 0);
            w.WriteEndObject();
            w.WriteString("log", r.Log);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        // The programs a whole-object verify did not check, and why.
        if (skipped != null)
        {
            w.WriteStartArray("skipped");
            foreach (var p in skipped)
            {
                w.WriteStartObject();
                w.WriteString("name", p.Name);
                w.WriteString("section", p.SectionName);
                w.WriteString("type", p.Type.ToString());
                w.WriteString("reason", SkipReason(p));
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    });

    /// <summary>Parses <c>NAME:TYPE:KEY:VALUE:ENTRIES[:ro]</c> entries separated by commas.</summary>
    public static List<MapInfo> ParseMaps(string spec)
    {
        var maps = new List<MapInfo>();
        foreach (var entry in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var p = entry.Split(':');
            if (p.Length is < 5 or > 6) throw new UsageException($"map '{entry}' is not NAME:TYPE:KEY:VALUE:ENTRIES[:ro]");
            // A kernel name (SOCKMAP, PERCPU_ARRAY, ...) matches the loader's MapType ignoring case and underscores.
            var type = uint.TryParse(p[1], NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? (BpfJit.Frontend.Elf.MapType)t
                : Enum.TryParse<BpfJit.Frontend.Elf.MapType>(p[1].Replace("_", ""), ignoreCase: true, out var named) ? named
                : throw new UsageException($"unknown map type '{p[1]}'");
            int Num(string s) => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v
                : throw new UsageException($"'{s}' is not a number in map '{entry}'");
            maps.Add(new MapInfo(p[0], type, Num(p[2]), Num(p[3]), Num(p[4]), 0, p.Length == 6 && p[5] == "ro"));
        }
        return maps;
    }
}
