using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// Turning an object's map declarations (<see cref="MapSpec"/>) into live maps, the steps of
/// <see cref="Loading.BpfCollection"/> (through which every host loads): the creation attributes, with a
/// map-in-map's template, and, once all the object's maps exist, the maps the object puts in map-in-map slots.
/// </summary>
public static class ObjectMaps
{
    /// <summary>The BPF_MAP_CREATE attributes of <paramref name="spec"/>, with its inner map as the template of a map-in-map.</summary>
    public static MapDefinition Definition(MapSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        // The u32 sizes keep their bits: MapFactory reads a negative size as the u32 the syscall would get.
        return new MapDefinition(spec.Name, (MapType)(int)spec.Type, unchecked((int)spec.KeySize), unchecked((int)spec.ValueSize),
            unchecked((int)spec.MaxEntries), spec.Flags, spec.SpinLockOffset, spec.InnerMap is { } inner ? Definition(inner) : null, spec.NumaNode,
            spec.TimerOffset, Btf: spec.BtfKeyTypeId != 0 && spec.BtfValueTypeId != 0, Kptrs: spec.Kptrs.Count > 0 ? spec.Kptrs : null,
            BtfKey: spec.BtfKey);
    }

    /// <summary>
    /// Writes a global-data map's initial value (<see cref="MapSpec.InitialValue"/>, zero-padded to the value size) into
    /// <paramref name="map"/> at key 0 and freezes a read-only one, as libbpf does after creating it. An empty initial
    /// value (<c>.bss</c>) writes nothing: the new map is already zeroed, and a large one stays uncommitted.
    /// Returns 0 or the update's negated errno; a spec without an initial value is left alone.
    /// </summary>
    public static int WriteInitialValue(MapSpec spec, BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(map);
        if (spec.InitialValue is not { } init) return 0;
        if (init.Length > 0)
        {
            var value = new byte[map.UserValueSize];
            init.AsSpan(0, Math.Min(init.Length, value.Length)).CopyTo(value);
            int err = map.Update(new byte[4], value);
            if (err != 0) return err;
        }
        if (spec.Frozen) map.Freeze();
        return 0;
    }

    /// <summary>
    /// Stores each map-in-map's initial maps (<c>.values = { [0] = &amp;inner }</c>, <see cref="MapSpec.InitialInnerMaps"/>)
    /// as libbpf does after creating the object's maps: <paramref name="live"/> gives the live map of a spec by name.
    /// Throws <see cref="BpfException"/> naming the map and slot with the kernel's errno when a map does not fit.
    /// </summary>
    public static void InstallInnerMaps(IEnumerable<MapSpec> specs, Func<string, BpfMap?> live)
    {
        ArgumentNullException.ThrowIfNull(specs);
        ArgumentNullException.ThrowIfNull(live);
        foreach (var spec in specs)
        {
            if (spec.InitialInnerMaps.Count == 0) continue;
            if (live(spec.Name) is not MapOfMaps outer)
                throw new BpfException($"map {spec.Name}: initial inner maps need a map-in-map, not {live(spec.Name)?.Type.ToString() ?? "nothing"}");
            foreach (var (slot, name) in spec.InitialInnerMaps.OrderBy(e => e.Key))
            {
                var inner = live(name) ?? throw new BpfException($"map {spec.Name}: slot {slot}: no map named '{name}'");
                // A HASH_OF_MAPS slot is a key of the outer map's key size whose first bytes are the u32 slot.
                var key = new byte[outer.KeySize];
                BitConverter.TryWriteBytes(key, slot);
                int err = outer.SetMap(key, inner);
                if (err != 0) throw new BpfException($"map {spec.Name}: slot {slot}: cannot store map {name} (-{Errno.Name(-err)})");
            }
        }
    }

    /// <summary>
    /// Stores each PROG_ARRAY's initial programs (<c>.values = { [0] = (void *)&amp;prog }</c>,
    /// <see cref="MapSpec.InitialPrograms"/>) as libbpf does once the object's programs are loaded
    /// (init_prog_array_slots): <paramref name="live"/> gives the live map of a spec by name and
    /// <paramref name="program"/> the loaded program of a name (a host that loads programs on demand loads it
    /// then). Throws <see cref="BpfException"/> in libbpf's words when a slot cannot be filled.
    /// </summary>
    public static void InstallPrograms(IEnumerable<MapSpec> specs, Func<string, BpfMap?> live, Func<string, ITailCallTarget?> program)
    {
        ArgumentNullException.ThrowIfNull(specs);
        ArgumentNullException.ThrowIfNull(live);
        ArgumentNullException.ThrowIfNull(program);
        foreach (var spec in specs)
        {
            if (spec.InitialPrograms.Count == 0) continue;
            if (live(spec.Name) is not ProgArrayMap array)
                throw new BpfException($"map '{spec.Name}': initial programs need a PROG_ARRAY, not {live(spec.Name)?.Type.ToString() ?? "nothing"}");
            foreach (var (slot, name) in spec.InitialPrograms.OrderBy(e => e.Key))
            {
                var target = program(name)
                    ?? throw new BpfException($"map '{spec.Name}': failed to initialize slot [{slot}] to prog '{name}': the program is not loaded");
                // The byte API reads back a program id, as bpf_map_lookup_elem on a PROG_ARRAY does.
                int err = array.SetProgram(slot, target, target is SkLookup.SkLookupProgram p ? (uint)p.Id : 0);
                if (err != 0) throw new BpfException($"map '{spec.Name}': failed to initialize slot [{slot}] to prog '{name}': -{Errno.Name(-err)}");
            }
        }
    }
}
