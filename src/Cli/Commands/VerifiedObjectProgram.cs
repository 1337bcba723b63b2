using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Verifier;

namespace BpfJit.Cli.Commands;

/// <summary>
/// An object's SK_LOOKUP program made ready the way the runtime makes it (ScenarioBuilder, SkLookupProgram):
/// the object's maps created (initial values written, .rodata frozen), the program verified against them,
/// its map references bound and its ctx loads rewritten, with the verifier's facts for the JIT. Owns the maps.
/// </summary>
public sealed class VerifiedObjectProgram : IDisposable
{
    readonly List<BpfMap> _maps;

    VerifiedObjectProgram(string name, Instruction[] code, ProgramFacts facts, List<BpfMap> maps, HelperTable helpers, BoundProgram bound)
    {
        Name = name;
        Code = code;
        Facts = facts;
        _maps = maps;
        Helpers = helpers;
        References = bound.References;
    }

    /// <summary>Where the binder put a map or map value address into an ld_imm64, by slot.</summary>
    public IReadOnlyList<BoundMapReference> References { get; }

    /// <summary>The object the program came from.</summary>
    public CollectionSpec Collection { get; private init; } = null!;

    /// <summary>The program as the object holds it.</summary>
    public ProgramSpec Spec { get; private init; } = null!;

    /// <summary>The program's name.</summary>
    public string Name { get; }

    /// <summary>The instructions an engine runs (bound, ctx loads rewritten).</summary>
    public Instruction[] Code { get; }

    /// <summary>What the verifier proved, with each helper call's live map.</summary>
    public ProgramFacts Facts { get; }

    /// <summary>The SK_LOOKUP helper table.</summary>
    public HelperTable Helpers { get; }

    /// <summary>The maps created for the object, in the object's order.</summary>
    public IReadOnlyList<BpfMap> Maps => _maps;

    /// <summary>
    /// Loads <paramref name="path"/> and prepares its program <paramref name="program"/> (default: the first
    /// SK_LOOKUP program); <paramref name="sizes"/> replaces the key, value and entry sizes of maps by name.
    /// </summary>
    public static VerifiedObjectProgram Load(string path, string? program, IReadOnlyDictionary<string, (int Key, int Value, int Entries)>? sizes = null)
    {
        var collection = ObjectFile.Load(path);
        var spec = program == null
            ? collection.Programs.FirstOrDefault(p => p.IsSupported && p.Type == ProgramType.SkLookup)
            : collection.Programs.TryGet(program, out var named) ? named : null;
        if (spec == null)
            throw new BpfException($"{path}: no {(program == null ? "SK_LOOKUP program in the object" : $"program named '{program}'")} (programs: {string.Join(", ", collection.Programs.Select(p => p.Name))})");
        if (!spec.IsSupported || spec.Type != ProgramType.SkLookup)
            throw new BpfException($"{path}: section {spec.SectionName}: program {spec.Name}: program type {spec.Type} is not supported (only sk_lookup)");
        var maps = new List<BpfMap>();
        try
        {
            foreach (var m in collection.Maps)
            {
                var (key, value, entries) = sizes != null && sizes.TryGetValue(m.Name, out var given) ? given : ((int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries);
                BpfMap map;
                try { map = MapFactory.Create(ObjectMaps.Definition(m) with { KeySize = key, ValueSize = value, MaxEntries = entries }); }
                catch (MapCreateException e) { throw new BpfException($"{path}: {e.Message}", e); }
                maps.Add(map);
                if (ObjectMaps.WriteInitialValue(m, map) != 0) throw new BpfException($"{path}: map {m.Name}: cannot write its initial value");
            }
            ObjectMaps.InstallInnerMaps(collection.Maps, name => maps.Find(m => m.Name == name));
            var helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
            var facts = new SkLookupProgramVerifier().VerifyWithFacts(spec, maps, helpers);
            var bound = ProgramBinder.Bind(spec, maps);
            var code = CtxLoadRewriter.Rewrite(bound.Code);
            return new VerifiedObjectProgram(spec.Name, code, facts, maps, helpers, bound) { Collection = collection, Spec = spec };
        }
        catch
        {
            foreach (var map in maps) map.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var map in _maps) map.Dispose();
        _maps.Clear();
    }
}
