using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Baselines;

/// <summary>
/// One clang-built object on the runtime's loading path (<see cref="BpfCollection"/>, as every verb and the scenario
/// builder load it): live maps created, <c>.rodata</c> written and frozen like libbpf; each program verified and bound
/// once, then prepared on whichever engine a benchmark asks for. The caller installs the verifier
/// (<c>ProgramVerification.Verifier</c>).
/// </summary>
public sealed class SuiteObject : IDisposable
{
    readonly BpfCollection _live;

    SuiteObject(BpfCollection live) => _live = live;

    /// <summary>The parsed object.</summary>
    public CollectionSpec Spec => _live.Spec;

    /// <summary>The live maps, in the object's map order (the index ld_imm64 src 5 uses).</summary>
    public IReadOnlyList<BpfMap> Maps => _live.Maps;

    /// <summary>The map named <paramref name="name"/>.</summary>
    public BpfMap Map(string name) => _live.Map(name);

    /// <summary>
    /// The definition a live map gets for <paramref name="m"/>: the object's, except a HASH map with a
    /// zero key or value size (tubular's <c>destinations</c>, sized by its host), which gets 257/8 as
    /// tubular's host gives it.
    /// </summary>
    public static MapDefinition DefinitionOf(MapSpec m) => Sized(m, ObjectMaps.Definition(m));

    static MapDefinition Sized(MapSpec m, MapDefinition def) =>
        m.Type == MapType.Hash && (m.KeySize == 0 || m.ValueSize == 0) ? def with { KeySize = 257, ValueSize = 8 } : def;

    /// <summary>Parses <paramref name="path"/> and creates its maps.</summary>
    public static SuiteObject Load(string path) =>
        new(BpfCollection.Load(path, new CollectionOptions { Programs = [], MapDefinition = Sized }));

    /// <summary>The SK_LOOKUP programs of the object, in section order.</summary>
    public IEnumerable<ProgramSpec> Programs => Spec.Programs.Where(p => p.IsSupported);

    /// <summary>
    /// Program <paramref name="name"/> prepared on <paramref name="engine"/>, with the verifier's facts (the JIT
    /// specialises from them); verified and bound on its first use. The caller owns the program.
    /// </summary>
    public SkLookupProgram LoadProgram(string name, IBpfEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        return _live.LoadProgram(name).PrepareOn(engine);
    }

    /// <summary>Disposes the maps (after the programs that use them are no longer run).</summary>
    public void Dispose() => _live.Dispose();
}
