using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Examples.UdpEcho;

/// <summary>
/// A clang-built object made live: its maps created, its SK_LOOKUP programs verified against them,
/// bound to them and prepared on an engine. The host fills the maps and attaches the programs.
/// </summary>
public sealed class LoadedObject
{
    LoadedObject(Dictionary<string, BpfMap> maps, Dictionary<string, SkLookupProgram> programs)
    {
        Maps = maps;
        Programs = programs;
    }

    /// <summary>The object's maps by name (including <c>.rodata</c>/<c>.data</c>/<c>.bss</c> for global data).</summary>
    public IReadOnlyDictionary<string, BpfMap> Maps { get; }

    /// <summary>The object's SK_LOOKUP programs by name, ready to attach.</summary>
    public IReadOnlyDictionary<string, SkLookupProgram> Programs { get; }

    /// <summary>
    /// Loads <paramref name="path"/>: creates every map the object declares, writes global data's
    /// initial values (freezing <c>.rodata</c> as libbpf does), verifies each SK_LOOKUP program with
    /// the installed <see cref="ProgramVerification.Verifier"/>, binds its map references and prepares
    /// it on <paramref name="engine"/>.
    /// </summary>
    /// <exception cref="Frontend.BpfException">
    /// The object is malformed (<see cref="BpfObjectException"/>), a map cannot be created
    /// (<see cref="MapCreateException"/>), a program is rejected (<c>BpfJit.Verifier.BpfVerifierException</c>,
    /// whose <c>Log</c> is the verifier log), a map reference cannot be bound (<see cref="ProgramBindException"/>)
    /// or no verifier is installed.
    /// </exception>
    public static LoadedObject Load(string path, IBpfEngine engine)
    {
        // [load]
        CollectionSpec spec = ObjectFile.Load(path);
        var maps = new List<BpfMap>();
        foreach (MapSpec m in spec.Maps)
        {
            var map = MapFactory.Create(ObjectMaps.Definition(m));          // a map-in-map gets its template
            if (m.InitialValue is { } initial)
            {
                var value = new byte[map.UserValueSize];
                initial.AsSpan(0, Math.Min(initial.Length, value.Length)).CopyTo(value);
                int err = map.Update(new byte[4], value);
                if (err != 0) throw new MapCreateException(m.Name, map.Type, -err, "writing the initial value failed");
                if (m.Frozen) map.Freeze();
            }
            maps.Add(map);
        }
        ObjectMaps.InstallInnerMaps(spec.Maps, name => maps.Find(x => x.Name == name)); // .values = { [0] = &inner }
        var programs = new Dictionary<string, SkLookupProgram>();
        foreach (ProgramSpec p in spec.Programs.Where(p => p.IsSupported))
        {
            var helpers = SkLookupHelpers.CreateTable();
            var facts = ProgramVerification.Verify(p, maps, helpers);          // throws with the verifier log
            var bound = ProgramBinder.Bind(p.Instructions, maps);               // map references → live handles
            programs[p.Name] = SkLookupProgram.Load(p.Name, bound, engine, helpers, facts); // facts: the JIT specialises
        }
        ObjectMaps.InstallPrograms(spec.Maps, name => maps.Find(x => x.Name == name), programs.GetValueOrDefault); // PROG_ARRAY .values
        // [/load]
        return new LoadedObject(maps.ToDictionary(m => m.Name), programs);
    }
}
