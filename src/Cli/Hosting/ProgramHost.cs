using System.Text.Json;
using BpfJit.Cli.Commands;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// One SK_LOOKUP program made ready on an engine for <c>run</c> and <c>bench</c>, with the namespace
/// whose sockets it may select: from an ELF object (its maps created from the object, or taken by
/// name from a scenario), from a scenario file (an attached or named program), or from an assembly,
/// raw or conformance file without maps.
/// </summary>
public sealed class ProgramHost : IDisposable
{
    readonly List<BpfMap> _ownMaps = [];

    ProgramHost(NetNamespace ns, ScenarioEnvironment? scenario)
    {
        Namespace = ns;
        Scenario = scenario;
    }

    /// <summary>The program.</summary>
    public SkLookupProgram Program { get; private set; } = null!;

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
    public static ProgramHost Load(string path, string? programName, string? scenarioPath, IBpfEngine engine, bool verify = true)
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
                host.Program = SkLookupProgram.Load(Path.GetFileNameWithoutExtension(path), verify ? Verified(path, code) : code, engine);
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
    static Instruction[] Verified(string path, Instruction[] code)
    {
        var result = BpfJit.Verifier.Verifier.Verify(code, new BpfJit.Verifier.VerifierOptions { Helpers = SkLookupHelpers.CreateTable() });
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
            program = spec.Programs.FirstOrDefault(p => p.IsSupported && p.Type == ProgramType.SkLookup) ?? throw new BpfException($"{path}: no SK_LOOKUP program in the object");
        else if (!spec.Programs.TryGet(programName, out program!))
            throw new BpfException($"{path}: no program named '{programName}' (programs: {string.Join(", ", spec.Programs.Select(p => p.Name))})");
        if (!program.IsSupported || program.Type != ProgramType.SkLookup)
            throw new BpfException($"{path}: section {program.SectionName}: program {program.Name}: program type {program.Type} is not supported (only sk_lookup)");
        var maps = spec.Maps.Select(m => Scenario?.Maps.GetValueOrDefault(m.Name) ?? CreateMap(path, m)).ToList();
        // A scenario's object already has its initial inner maps; the maps made here get them now.
        if (Scenario == null) ObjectMaps.InstallInnerMaps(spec.Maps, name => maps.Find(m => m.Name == name));
        Program = Prepare(path, program, maps, engine, verify);
        Source = $"{Path.GetFileName(path)}: {program.Name}";
        // libbpf fills a PROG_ARRAY's initial slots with the object's programs once they are loaded; the
        // programs the slots name load here too (a scenario's object has them already).
        if (Scenario == null)
        {
            ObjectMaps.InstallPrograms(spec.Maps, name => maps.Find(m => m.Name == name), name =>
                name == program.Name ? Program
                : spec.Programs.TryGet(name, out var other) && other.IsSupported && other.Type == ProgramType.SkLookup ? Prepare(path, other, maps, engine, verify) : null);
        }
    }

    static SkLookupProgram Prepare(string path, ProgramSpec program, List<BpfMap> maps, IBpfEngine engine, bool verify)
    {
        var helpers = SkLookupHelpers.CreateTable();
        ProgramFacts? facts = null;
        try
        {
            if (verify) facts = new BpfJit.Verifier.SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
        }
        catch (BpfJit.Verifier.BpfVerifierException e)
        {
            throw new ProgramRejectedException($"{path}: program {program.Name}: verifier rejected the program at insn {e.Result.ErrorInsn}: {e.Result.Error}");
        }
        var bound = ProgramBinder.Bind(program, maps);
        return SkLookupProgram.Load(program.Name, bound, engine, helpers, facts);
    }

    // The object's own definition, initial value and freezing, as libbpf creates it.
    BpfMap CreateMap(string path, MapSpec m)
    {
        BpfMap map;
        try
        {
            map = MapFactory.Create(ObjectMaps.Definition(m));
        }
        catch (MapCreateException e)
        {
            throw new BpfException($"{path}: map {m.Name}: {e.Message} (a scenario file given with --scenario may define it)");
        }
        _ownMaps.Add(map);
        int err = ObjectMaps.WriteInitialValue(m, map);
        if (err != 0) throw new BpfException($"{path}: map {m.Name}: initial value: {ScenarioRunner.ErrnoName(err)}");
        return map;
    }

    /// <summary>A socket's name for output: the scenario's name, or <c>#cookie</c>.</summary>
    public static string NameOf(Sock s) => s.Name ?? $"#{s.Cookie}";

    /// <summary>Closes the scenario (sockets, links) and the maps made here.</summary>
    public void Dispose()
    {
        if (Scenario != null) Scenario.Dispose();
        else Namespace.Dispose();
        foreach (var m in _ownMaps) m.Dispose();
    }
}

/// <summary>The verifier rejected a program the command was asked to run (exit code 1).</summary>
public sealed class ProgramRejectedException(string message) : BpfException(message);
