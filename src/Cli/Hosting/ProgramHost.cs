using System.Text.Json;
using BpfJit.Cli.Commands;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// One SK_LOOKUP or SK_REUSEPORT program made ready on an engine for <c>run</c> and <c>bench</c>, with the namespace
/// whose sockets it may select: from an ELF object (its maps created from the object, or taken by
/// name from a scenario), from a scenario file (an attached or named program), or from an assembly,
/// raw or conformance file without maps.
/// </summary>
public sealed class ProgramHost : IDisposable
{
    BpfCollection? _collection;
    SkLookupProgram? _program;

    ProgramHost(NetNamespace ns, ScenarioEnvironment? scenario)
    {
        Namespace = ns;
        Scenario = scenario;
    }

    /// <summary>The SK_LOOKUP program; an SK_REUSEPORT program is <see cref="Reuseport"/> (then this throws).</summary>
    public SkLookupProgram Program
    {
        get => _program ?? throw new InvalidOperationException($"{Source}: an SK_REUSEPORT program, not SK_LOOKUP");
        private set => _program = value;
    }

    /// <summary>The SK_REUSEPORT program (an object's, named with --program), or null for an SK_LOOKUP one.</summary>
    public SkReuseportProgram? Reuseport { get; private set; }

    /// <summary>The program's maps, whichever its type.</summary>
    public IReadOnlyList<BpfJit.Runtime.Maps.BpfMap> Maps => Reuseport?.Maps ?? Program.Maps;

    /// <summary>The program's name, whichever its type.</summary>
    public string Name => Reuseport?.Name ?? Program.Name;

    /// <summary>Where the program came from (<c>dispatcher.o: dispatcher</c>).</summary>
    public string Source { get; private set; } = "";

    /// <summary>The namespace the sockets live in (the scenario's, or an empty one).</summary>
    public NetNamespace Namespace { get; }

    /// <summary>The scenario the sockets and maps came from, or null.</summary>
    public ScenarioEnvironment? Scenario { get; }

    /// <summary>
    /// The <see cref="System.Diagnostics.Stopwatch"/> timestamp at which the program's instructions were in hand:
    /// the object parsed, or the program file read; with a scenario, the start of <see cref="Load"/> (the
    /// scenario's build loads and compiles its own programs). <c>bench</c> times compiles from here.
    /// </summary>
    public long LoadedAt { get; private set; }

    /// <summary>
    /// Prepares a program from <paramref name="path"/> (object, scenario, or program file) on
    /// <paramref name="engine"/>; <paramref name="scenarioPath"/> supplies sockets and maps. Bad input
    /// is a <see cref="BpfException"/> naming the file; a verifier rejection a <see cref="BpfException"/> too.
    /// </summary>
    /// <remarks>
    /// <paramref name="verify"/> false (<c>bpfjit run --no-verify</c>) runs a program file's or an object's program
    /// without the verifier: the caller passes a checking engine (the interpreter, or the JIT in checked mode), so a
    /// bad access faults instead of touching memory. A scenario's own programs are verified by the scenario.
    /// </remarks>
    public static ProgramHost Load(string path, string? programName, string? scenarioPath, IBpfEngine engine, bool verify = true,
        ProgramType fileType = ProgramType.SkLookup)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        InputFile.RequireFile(path);
        if (ProgramFiles.IsJsonFile(path))
        {
            if (scenarioPath != null) throw new UsageException("--scenario is not needed when the program comes from a scenario file");
            scenarioPath = path;
        }
        var env = scenarioPath == null ? null : ScenarioBuilder.Build(scenarioPath, engine);
        var host = new ProgramHost(env?.Namespace ?? new NetNamespace(), env) { LoadedAt = start };
        try
        {
            if (path == scenarioPath) host.FromScenario(path, programName, engine);
            else if (ProgramFiles.IsElfFile(path)) host.FromObject(path, programName, engine, verify);
            else
            {
                if (programName != null) throw new UsageException("--program needs an object or a scenario file");
                var code = ProgramFiles.Load(path);
                host.LoadedAt = System.Diagnostics.Stopwatch.GetTimestamp();
                string name = Path.GetFileNameWithoutExtension(path);
                if (fileType == ProgramType.SkReuseport)
                    host.Reuseport = SkReuseportProgram.Load(name, verify ? Verified(path, code, fileType, SkReuseportHelpers.CreateTable()) : code, engine);
                else
                    host.Program = SkLookupProgram.Load(name, verify ? Verified(path, code, fileType, SkLookupHelpers.CreateTable()) : code, engine);
                host.Source = Path.GetFileName(path);
            }
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    // A program without maps is checked by the verifier like one from an object: never run unverified.
    static Instruction[] Verified(string path, Instruction[] code, ProgramType type, HelperTable helpers)
    {
        var result = BpfJit.Verifier.Verifier.Verify(code, new BpfJit.Verifier.VerifierOptions { Helpers = helpers, ProgramType = type });
        if (!result.Accepted) throw new ProgramRejectedException($"{path}: verifier rejected the program at insn {result.ErrorInsn}: {result.Error}");
        return code;
    }

    void FromScenario(string path, string? programName, IBpfEngine engine)
    {
        var env = Scenario!;
        if (programName == null)
        {
            var links = env.Namespace.SkLookup.Links;
            if (links.Count > 0) { Use(links[0].Program, path); return; }
            if (env.Programs.Count == 1) { Use(env.Programs.Values.Single(), path); return; }
            throw new BpfException($"{path}: no program is attached; name one with --program");
        }
        if (env.Programs.TryGetValue(programName, out var loaded)) { Use(loaded, path); return; }
        // A program of the scenario's object that the scenario does not attach.
        string? objectPath = ObjectOf(path);
        if (objectPath == null)
            throw new BpfException($"{path}: no program named '{programName}' (programs: {string.Join(", ", env.Programs.Keys)})");
        FromObject(objectPath, programName, engine, verify: true);
    }

    void Use(SkLookupProgram program, string path)
    {
        Program = program;
        Source = $"{Path.GetFileName(path)}: {program.Name}";
    }

    static string? ObjectOf(string scenarioPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(scenarioPath), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        if (!doc.RootElement.TryGetProperty("object", out var o) || o.ValueKind != JsonValueKind.String) return null;
        return Path.Combine(Path.GetDirectoryName(Path.GetFullPath(scenarioPath)) ?? ".", o.GetString()!);
    }

    void FromObject(string path, string? programName, IBpfEngine engine, bool verify)
    {
        var spec = ObjectFile.Load(path);
        // With a scenario, the scenario's build (which compiled its own programs) stays in the figure.
        if (Scenario == null) LoadedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        ProgramSpec program;
        if (programName == null)
            // The first SK_LOOKUP program, as before SK_REUSEPORT ran here; an object of reuseport programs only, its first.
            program = spec.Programs.FirstOrDefault(p => p.IsSupported && p.Type == ProgramType.SkLookup)
                ?? spec.Programs.FirstOrDefault(p => p.IsSupported && p.Type == ProgramType.SkReuseport)
                ?? throw new BpfException($"{path}: no SK_LOOKUP or SK_REUSEPORT program in the object");
        else if (!spec.Programs.TryGet(programName, out program!))
            throw new BpfException($"{path}: no program named '{programName}' (programs: {string.Join(", ", spec.Programs.Select(p => p.Name))})");
        if (!program.IsSupported || program.Type is not (ProgramType.SkLookup or ProgramType.SkReuseport))
            throw new BpfException($"{path}: section {program.SectionName}: program {program.Name}: program type {program.Type} is not supported (only sk_lookup and sk_reuseport)");
        // A scenario's maps stand in for the object's of the same name (it made them, filled them and owns them);
        // the rest are the object's own. The programs PROG_ARRAY slots name load with it.
        _collection = ObjectLoading.Load(path, spec, new CollectionOptions
        {
            Engine = engine,
            Verify = verify,
            Programs = [program.Name],
            MapReplacements = Scenario?.Maps,
        }, mapHint: " (a scenario file given with --scenario may define it)");
        if (program.Type == ProgramType.SkReuseport) Reuseport = _collection.ReuseportProgram(program.Name);
        else Program = _collection.Program(program.Name);
        Source = $"{Path.GetFileName(path)}: {program.Name}";
    }

    /// <summary>A socket's name for output: the scenario's name, or <c>#cookie</c>.</summary>
    public static string NameOf(Sock s) => s.Name ?? $"#{s.Cookie}";

    /// <summary>Closes the scenario (sockets, links) and the object loaded here.</summary>
    public void Dispose()
    {
        if (Scenario != null) Scenario.Dispose();
        else Namespace.Dispose();
        _collection?.Dispose();
    }
}

/// <summary>The verifier rejected a program the command was asked to run (exit code 1).</summary>
public sealed class ProgramRejectedException(string message) : BpfException(message);
