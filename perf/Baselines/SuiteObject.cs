using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Baselines;

/// <summary>
/// One clang-built object on the runtime's loading path (as <c>ScenarioBuilder</c> loads it):
/// <c>ObjectFile.Load</c>, a live map per object map (<c>MapFactory</c>; <c>.rodata</c> written and
/// frozen like libbpf), then per program <c>ProgramVerification.Verify</c> → <c>ProgramBinder.Bind</c>
/// → <c>SkLookupProgram.Load</c>. The caller installs the verifier (<c>ProgramVerification.Verifier</c>).
/// </summary>
public sealed class SuiteObject : IDisposable
{
    readonly List<BpfMap> _maps = [];

    SuiteObject(CollectionSpec spec) => Spec = spec;

    /// <summary>The parsed object.</summary>
    public CollectionSpec Spec { get; }

    /// <summary>The live maps, in the object's map order (the index ld_imm64 src 5 uses).</summary>
    public IReadOnlyList<BpfMap> Maps => _maps;

    /// <summary>The map named <paramref name="name"/>.</summary>
    public BpfMap Map(string name) => _maps.FirstOrDefault(m => m.Name == name) ?? throw new KeyNotFoundException($"{Spec.FileName}: no map '{name}'");

    /// <summary>
    /// The definition a live map gets for <paramref name="m"/>: the object's, except a HASH map with a
    /// zero key or value size (tubular's <c>destinations</c>, sized by its host), which gets 257/8 as
    /// tubular's host gives it.
    /// </summary>
    public static MapDefinition DefinitionOf(MapSpec m)
    {
        ArgumentNullException.ThrowIfNull(m);
        var def = new MapDefinition(m.Name, m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags);
        if (m.Type == MapType.Hash && (m.KeySize == 0 || m.ValueSize == 0)) def = def with { KeySize = 257, ValueSize = 8 };
        return def;
    }

    /// <summary>Parses <paramref name="path"/> and creates its maps.</summary>
    public static SuiteObject Load(string path)
    {
        var obj = new SuiteObject(ObjectFile.Load(path));
        try
        {
            foreach (var m in obj.Spec.Maps)
            {
                var map = MapFactory.Create(DefinitionOf(m));
                obj._maps.Add(map);
                if (m.InitialValue is { } init)
                {
                    var value = new byte[map.UserValueSize];
                    init.AsSpan(0, Math.Min(init.Length, value.Length)).CopyTo(value);
                    int err = map.Update(new byte[4], value);
                    if (err != 0) throw new InvalidOperationException($"{path}: map {m.Name}: initial value: errno {-err}");
                    if (m.Frozen) map.Freeze();
                }
            }
            return obj;
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    /// <summary>The SK_LOOKUP programs of the object, in section order.</summary>
    public IEnumerable<ProgramSpec> Programs => Spec.Programs.Where(p => p.IsSupported);

    /// <summary>Verifies, binds and prepares program <paramref name="name"/> on <paramref name="engine"/>.</summary>
    public SkLookupProgram LoadProgram(string name, IBpfEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        var spec = Spec.Programs[name];
        var helpers = SkLookupHelpers.CreateTable();
        var facts = ProgramVerification.Verify(spec, _maps, helpers);
        var bound = ProgramBinder.Bind(spec.Instructions, _maps);
        // With the verifier's facts, as the runtime's own object path does: the JIT specialises from them.
        return SkLookupProgram.Load(name, bound, engine, helpers, facts);
    }

    /// <summary>Disposes the maps (after the programs that use them are no longer run).</summary>
    public void Dispose()
    {
        foreach (var m in _maps) m.Dispose();
        _maps.Clear();
    }
}
