using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Runtime.Loading;

/// <summary>
/// One program of a <see cref="BpfCollection"/>: verified against the collection's live maps, bound to them, and
/// (when the collection has an engine) prepared on it, ready to attach.
/// </summary>
public sealed class CollectionProgram
{
    internal CollectionProgram(ProgramSpec spec, HelperTable helpers, ProgramFacts? facts, BoundProgram bound, SkLookupProgram? program,
        SkReuseport.SkReuseportProgram? reuseport = null)
    {
        ReuseportProgram = reuseport;
        Spec = spec;
        Helpers = helpers;
        Facts = facts;
        Bound = bound;
        Program = program;
    }

    /// <summary>The program as the object holds it.</summary>
    public ProgramSpec Spec { get; }

    /// <summary>The helper table of its program type.</summary>
    public HelperTable Helpers { get; }

    /// <summary>What the verifier proved, for the engine; null when it was not verified.</summary>
    public ProgramFacts? Facts { get; }

    /// <summary>Its map references bound to the collection's live maps.</summary>
    public BoundProgram Bound { get; }

    /// <summary>The prepared SK_LOOKUP program, or null when the collection was loaded without an engine or the program is of another type.</summary>
    public SkLookupProgram? Program { get; }

    /// <summary>The prepared SK_REUSEPORT program (to attach to a <see cref="Sockets.ReuseportGroup"/>), or null as for <see cref="Program"/>.</summary>
    public SkReuseport.SkReuseportProgram? ReuseportProgram { get; }

    /// <summary>The program's name.</summary>
    public string Name => Spec.Name;

    /// <summary>
    /// Another instance of the program on <paramref name="engine"/>, from the same verification and binding (to run one
    /// program on each engine over the same maps); the caller owns it.
    /// </summary>
    public SkLookupProgram PrepareOn(IBpfEngine engine) => Spec.Type == Frontend.Elf.ProgramType.SkLookup
        ? SkLookupProgram.Load(Name, Bound, engine, Helpers, Facts)
        : throw new InvalidOperationException($"program {Name}: type {Spec.Type}: PrepareOn makes SK_LOOKUP programs");
}

/// <summary>
/// An object made live, the one path from a parsed object to attachable programs (cilium/ebpf's
/// NewCollectionWithOptions, libbpf's bpf_object__load): every map created (or taken from
/// <see cref="CollectionOptions.MapReplacements"/>), global data written and <c>.rodata</c> frozen, map-in-map
/// initial inner maps stored; then each program verified against those live maps (their BTF spin-lock facts
/// included), bound and prepared on the engine; then PROG_ARRAY initial slots filled. A failing step disposes
/// everything made so far and throws a <see cref="CollectionLoadException"/> that says where.
/// </summary>
/// <remarks>
/// It lives in the runtime, below the verifier and the JIT, so that the scenario builder can use it too: the verifier
/// comes in through <see cref="IProgramVerifier"/> and the engine through <see cref="IBpfEngine"/>.
/// Disposing the collection drops its references to the programs and the maps it created; links hold theirs.
/// Loading (<see cref="Load(CollectionSpec, CollectionOptions?)"/>, <see cref="LoadProgram"/>) is for one thread at a
/// time, as libbpf's object is; the maps and programs it hands out are as thread-safe as they are anywhere.
/// </remarks>
public sealed class BpfCollection : IDisposable
{
    readonly CollectionOptions _options;
    readonly List<BpfMap> _maps = [];
    readonly HashSet<BpfMap> _owned = [];
    readonly Dictionary<string, CollectionProgram> _programs = new(StringComparer.Ordinal);
    bool _disposed;

    BpfCollection(CollectionSpec spec, CollectionOptions options)
    {
        Spec = spec;
        _options = options;
    }

    /// <summary>The parsed object.</summary>
    public CollectionSpec Spec { get; }

    /// <summary>The live maps in the object's map order (the index a BPF_PSEUDO_MAP_IDX reference holds).</summary>
    public IReadOnlyList<BpfMap> Maps => _maps;

    /// <summary>The programs loaded so far, by name.</summary>
    public IReadOnlyDictionary<string, CollectionProgram> Programs => _programs;

    /// <summary>The live map named <paramref name="name"/>.</summary>
    public BpfMap Map(string name) => _maps.Find(m => m.Name == name) ?? throw new KeyNotFoundException($"{Spec.FileName}: no map '{name}'");

    /// <summary>The prepared program named <paramref name="name"/> (loaded now if it was not yet).</summary>
    public SkLookupProgram Program(string name) => LoadProgram(name) is var p && p.Spec.Type != Frontend.Elf.ProgramType.SkLookup
        ? throw new InvalidOperationException($"{Spec.FileName}: program {name} is of type {p.Spec.Type}, not SK_LOOKUP")
        : p.Program ?? throw new InvalidOperationException($"{Spec.FileName}: program {name}: the collection was loaded without an engine");

    /// <summary>The prepared SK_REUSEPORT program named <paramref name="name"/> (loaded now if it was not yet), for <see cref="Sockets.ReuseportGroup.Attach"/>.</summary>
    public SkReuseport.SkReuseportProgram ReuseportProgram(string name) => LoadProgram(name) is var p && p.Spec.Type != Frontend.Elf.ProgramType.SkReuseport
        ? throw new InvalidOperationException($"{Spec.FileName}: program {name} is of type {p.Spec.Type}, not SK_REUSEPORT")
        : p.ReuseportProgram ?? throw new InvalidOperationException($"{Spec.FileName}: program {name}: the collection was loaded without an engine");

    /// <summary>Parses <paramref name="path"/> (<see cref="ObjectFile.Load(string)"/>) and loads it.</summary>
    /// <exception cref="BpfException">The object is malformed (<see cref="BpfObjectException"/>) or a step failed (<see cref="CollectionLoadException"/>).</exception>
    public static BpfCollection Load(string path, CollectionOptions? options = null) => Load(ObjectFile.Load(path), options);

    /// <summary>Makes <paramref name="spec"/> live as <paramref name="options"/> say.</summary>
    /// <exception cref="CollectionLoadException">A map or program failed; nothing the call made is left alive.</exception>
    public static BpfCollection Load(CollectionSpec spec, CollectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var collection = new BpfCollection(spec, options ?? new CollectionOptions());
        try
        {
            collection.CreateMaps();
            var wanted = collection._options.Programs ?? [.. spec.Programs.Where(p => p.IsSupported).Select(p => p.Name)];
            foreach (var name in wanted) collection.LoadProgram(name);
            collection.InstallPrograms();
            return collection;
        }
        catch
        {
            collection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The map step of <see cref="Load(CollectionSpec, CollectionOptions?)"/> without making anything live: each map the
    /// object would create (not those in <see cref="CollectionOptions.MapReplacements"/>), as
    /// <see cref="CollectionOptions.MapDefinition"/> edits it, gets the checks <see cref="MapFactory.Create(MapDefinition)"/>
    /// makes, its memory counted beside the object's maps before it, and nothing is allocated (a 1 GiB ARRAY is only
    /// counted). libbpf's bpf_object__load creates every map before it loads a program, so an object whose map the kernel
    /// refuses fails there whatever its programs are: a host that only verifies an object's programs (<c>bpfjit verify</c>,
    /// <c>cfg</c>) calls this first to give the verdict a load would.
    /// </summary>
    /// <exception cref="CollectionLoadException">
    /// The error <see cref="Load(CollectionSpec, CollectionOptions?)"/> throws for the first map it would fail to create
    /// (step <see cref="CollectionLoadStep.Maps"/>, the map's name, the <see cref="MapCreateException"/> inside).
    /// </exception>
    public static void ValidateMaps(CollectionSpec spec, CollectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var collection = new BpfCollection(spec, options ?? new CollectionOptions());
        long pending = 0;
        foreach (var m in spec.Maps)
        {
            if (collection.Replacement(m) != null) continue;
            try { pending += (long)MapFactory.Admit(collection.DefinitionOf(m), pending); }
            catch (MapCreateException e) { throw collection.MapError(m, e); }
        }
    }

    BpfMap? Replacement(MapSpec m) => _options.MapReplacements is { } given && given.TryGetValue(m.Name, out var map) ? map : null;

    // The object's declaration as the host edits it (libbpf's bpf_map__set_*).
    MapDefinition DefinitionOf(MapSpec m)
    {
        var def = ObjectMaps.Definition(m);
        return _options.MapDefinition is { } edit ? edit(m, def) : def;
    }

    CollectionLoadException MapError(MapSpec m, MapCreateException e) =>
        Error(CollectionLoadStep.Maps, null, m.Name, null, e, $"{e.Reason} (-{Errno.Name(e.Errno)})");

    void CreateMaps()
    {
        foreach (var m in Spec.Maps)
        {
            if (Replacement(m) is { } given)
            {
                _maps.Add(given);
                continue;
            }
            BpfMap map;
            try { map = MapFactory.Create(DefinitionOf(m)); }
            catch (MapCreateException e) { throw MapError(m, e); }
            _maps.Add(map);
            _owned.Add(map);
            // libbpf writes global data and freezes .rodata right after creating it: its values are then constants to the verifier.
            int err = ObjectMaps.WriteInitialValue(m, map);
            if (err != 0) throw Error(CollectionLoadStep.Maps, null, m.Name, null, new BpfException($"initial value: {Errno.Name(-err)}"));
        }
        // A replaced map comes with its own contents: only the maps made here get the object's initial inner maps.
        try { ObjectMaps.InstallInnerMaps(OwnedSpecs(), Live); }
        catch (BpfException e) { throw Error(CollectionLoadStep.Maps, null, null, null, e); }
    }

    BpfMap? Live(string name) => _maps.Find(m => m.Name == name);

    IEnumerable<MapSpec> OwnedSpecs() => Spec.Maps.Where((_, i) => _owned.Contains(_maps[i]));

    /// <summary>
    /// Loads program <paramref name="name"/> of the object if it is not loaded yet: verified, bound and prepared as
    /// <see cref="Load(CollectionSpec, CollectionOptions?)"/> loads its programs. A failure leaves the collection as it was.
    /// </summary>
    /// <exception cref="CollectionLoadException">No such program, an unsupported type, a rejection, a bad map reference.</exception>
    public CollectionProgram LoadProgram(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_programs.TryGetValue(name, out var done)) return done;
        if (!Spec.Programs.TryGet(name, out var spec))
            throw Error(CollectionLoadStep.Lookup, null, null, null, new BpfException($"no program named '{name}' (programs: {string.Join(", ", Spec.Programs.Select(p => p.Name))})"));
        if (!spec.IsSupported)
            throw Error(CollectionLoadStep.Lookup, spec, null, null, new BpfException($"program type {spec.Type} is not supported (only sk_lookup and sk_reuseport)"));
        var helpers = HelpersFor(spec);
        ProgramFacts? facts = null;
        if (_options.Verify)
        {
            var verifier = _options.Verifier ?? ProgramVerification.Verifier ?? throw Error(CollectionLoadStep.Verify, spec, null, null, new BpfException(
                "no verifier is installed (set ProgramVerification.Verifier = new BpfJit.Verifier.SkLookupProgramVerifier()); programs are not run unverified"));
            try { facts = verifier.VerifyWithFacts(spec, _maps, helpers); }
            catch (BpfException e) { throw Error(CollectionLoadStep.Verify, spec, null, (e as IProgramRejection)?.InstructionIndex, e, (e as IProgramRejection)?.Reason); }
        }
        BoundProgram bound;
        try { bound = ProgramBinder.Bind(spec, _maps); }
        catch (ProgramBindException e) { throw Error(CollectionLoadStep.Bind, spec, null, e.Slot, e, e.Reason); }
        SkLookupProgram? program = null;
        SkReuseport.SkReuseportProgram? reuseport = null;
        if (_options.Engine is { } engine)
        {
            try
            {
                if (spec.Type == Frontend.Elf.ProgramType.SkReuseport) reuseport = SkReuseport.SkReuseportProgram.Load(name, bound, engine, helpers, facts);
                else program = SkLookupProgram.Load(name, bound, engine, helpers, facts);
            }
            catch (BpfException e) { throw Error(CollectionLoadStep.Prepare, spec, null, null, e); }
        }
        var loaded = new CollectionProgram(spec, helpers, facts, bound, program, reuseport);
        _programs[name] = loaded;
        return loaded;
    }

    // The helper table of the program's type: what its programs may call, by id.
    static HelperTable HelpersFor(ProgramSpec spec) => spec.Type switch
    {
        Frontend.Elf.ProgramType.SkLookup => SkLookupHelpers.CreateTable(),
        Frontend.Elf.ProgramType.SkReuseport => SkReuseport.SkReuseportHelpers.CreateTable(),
        _ => throw new BpfException($"program type {spec.Type} has no helper table"),
    };

    // libbpf fills a PROG_ARRAY's initial slots once the object's programs are loaded: a slot's program loads now
    // if the host did not ask for it. Slots need prepared programs: without an engine there are none to store.
    void InstallPrograms()
    {
        if (_options.Engine == null) return;
        try { ObjectMaps.InstallPrograms(OwnedSpecs(), Live, name => Spec.Programs.TryGet(name, out var p) && p.IsSupported && p.Type == Frontend.Elf.ProgramType.SkLookup ? Program(name) : null); }
        catch (CollectionLoadException) { throw; }
        catch (BpfException e) { throw Error(CollectionLoadStep.ProgramArray, null, null, null, e); }
    }

    CollectionLoadException Error(CollectionLoadStep step, ProgramSpec? program, string? map, int? insn, Exception inner, string? reason = null) =>
        new(step, Spec.FileName, program?.SectionName, program?.Name, map, insn, inner, reason);

    /// <summary>
    /// Drops the collection's reference to each program and each map it created (replacements stay with their owner);
    /// attached links keep their programs, and programs their maps, alive until they are gone too.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var p in _programs.Values)
        {
            p.Program?.Dispose();
            p.ReuseportProgram?.Dispose();
        }
        foreach (var m in _owned) m.Dispose();
    }
}
