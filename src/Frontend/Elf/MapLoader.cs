using System.Buffers.Binary;
using BpfJit.Frontend.Btf;

namespace BpfJit.Frontend.Elf;

/// <summary>
/// Finds the maps of an object: legacy <c>struct bpf_map_def</c> in <c>maps</c>, BTF-defined maps in
/// <c>.maps</c>, and global data sections as single-entry arrays (libbpf's order).
/// </summary>
sealed class MapLoader
{
    /// <summary>Size of the legacy struct bpf_map_def: type, key_size, value_size, max_entries, map_flags.</summary>
    const int LegacyDefSize = 20;

    readonly ElfFile _elf;
    readonly BtfSpec? _btf;
    readonly List<MapSpec> _maps = [];
    // Map definitions by section index, then offset of the definition. Not one dictionary keyed by (int, ulong): the
    // framework's comparer for that tuple is compiled by RyuJIT at a process's first object (docs/perf.md, "Cold start").
    readonly Dictionary<int, Dictionary<ulong, int>> _bySymbol = [];
    readonly Dictionary<int, int> _dataBySection = [];

    MapLoader(ElfFile elf, BtfSpec? btf)
    {
        _elf = elf;
        _btf = btf;
    }

    public IReadOnlyList<MapSpec> Maps => _maps;

    public static MapLoader Load(ElfFile elf, BtfSpec? btf)
    {
        var loader = new MapLoader(elf, btf);
        foreach (var s in elf.Sections.Where(s => s.Name == "maps")) loader.LoadLegacy(s);
        foreach (var s in elf.Sections.Where(s => s.Name == ".maps")) loader.LoadBtfMaps(s);
        foreach (var s in elf.Sections.Where(IsGlobalData)) loader.LoadGlobalData(s);
        return loader;
    }

    /// <summary>True for .rodata, .data, .bss and their dotted variants (.rodata.str1.1, .data.config).</summary>
    public static bool IsGlobalData(ElfSection s) =>
        s.Type is ElfSectionType.ProgBits or ElfSectionType.NoBits && !s.IsExecutable &&
        (IsKind(s.Name, ".rodata") || IsKind(s.Name, ".data") || IsKind(s.Name, ".bss"));

    static bool IsKind(string name, string kind) => name == kind || name.StartsWith(kind + ".", StringComparison.Ordinal);

    public static bool IsMapSection(ElfSection s) => s.Name is "maps" or ".maps";

    /// <summary>
    /// The map a relocation symbol points at: a map definition (by offset in its section) or a global
    /// data section. Returns null when the symbol is in neither.
    /// </summary>
    public (int Index, bool IsData)? Find(ElfSection section, ulong offset)
    {
        if (_dataBySection.TryGetValue(section.Index, out int data)) return (data, true);
        if (TryFindDefinition(section.Index, offset, out int map)) return (map, false);
        return null;
    }

    void Add(MapSpec spec, ElfSection section, ulong offset)
    {
        if (_maps.Any(m => m.Name == spec.Name))
            throw _elf.Error(section, (long)offset, $"duplicate map name '{spec.Name}'");
        if (!_bySymbol.TryGetValue(section.Index, out var byOffset)) _bySymbol[section.Index] = byOffset = [];
        byOffset[offset] = _maps.Count;
        _maps.Add(spec);
    }

    bool TryFindDefinition(int section, ulong offset, out int map)
    {
        map = 0;
        return _bySymbol.TryGetValue(section, out var byOffset) && byOffset.TryGetValue(offset, out map);
    }

    List<ElfSymbol> ObjectSymbols(ElfSection section) =>
        _elf.SymbolsByAddress(section.Index, static s => s.Type is ElfSymbolType.Object or ElfSymbolType.NoType && s.Name.Length > 0);

    void LoadLegacy(ElfSection section)
    {
        var data = _elf.Data(section);
        var symbols = ObjectSymbols(section).ToList();
        if (symbols.Count == 0 && data.Length > 0)
            throw _elf.Error(section, 0, "map definitions without symbols (cannot name the maps)");
        for (int i = 0; i < symbols.Count; i++)
        {
            var sym = symbols[i];
            ulong size = sym.Size != 0 ? sym.Size
                : (i + 1 < symbols.Count ? symbols[i + 1].Value : (ulong)data.Length) - sym.Value;
            if (sym.Value > (ulong)data.Length || size > (ulong)data.Length - sym.Value)
                throw _elf.Error(section, (long)sym.Value, $"map '{sym.Name}': definition (0x{size:x} bytes) runs past the end of the section");
            if (size < 16)
                throw _elf.Error(section, (long)sym.Value, $"map '{sym.Name}': definition is {size} bytes, struct bpf_map_def needs at least 16");
            byte[] def = data.Slice((int)sym.Value, (int)size).ToArray();
            uint U(int at) => at + 4 <= def.Length ? BinaryPrimitives.ReadUInt32LittleEndian(def.AsSpan(at)) : 0;
            for (int at = LegacyDefSize; at < def.Length; at++)
            {
                if (def[at] != 0)
                    throw _elf.Error(section, (long)sym.Value + at, $"map '{sym.Name}': unknown non-zero field past struct bpf_map_def (byte {at})");
            }
            var spec = new MapSpec(sym.Name, CheckType(U(0), section, (long)sym.Value, sym.Name), U(4), U(8), U(12))
            {
                Flags = U(16),
                Source = MapSource.LegacyMaps,
                SectionName = section.Name,
            };
            Add(spec, section, sym.Value);
        }
    }

    void LoadBtfMaps(ElfSection section)
    {
        var symbols = ObjectSymbols(section).ToList();
        if (symbols.Count == 0) return;
        if (_btf == null)
            throw _elf.Error(section, null, "BTF-defined maps need a .BTF section (compile with -g)");
        var datasec = _btf.Datasec(".maps")
            ?? throw _elf.Error(section, null, "no BTF DATASEC describes the .maps section");
        foreach (var sym in symbols)
        {
            BtfType? var = null;
            foreach (var v in BtfLists.Items(datasec.Variables))
            {
                var t = _btf.Type(v.TypeId);
                if (t.Kind == BtfKind.Var && t.Name == sym.Name) { var = t; break; }
            }
            if (var == null)
                throw _elf.Error(section, (long)sym.Value, $"map '{sym.Name}': no BTF variable describes it");
            Add(ReadBtfMap(section, sym, var.SizeOrType, sym.Name, out _), section, sym.Value);
        }
        InitInnerMaps(section, symbols);
    }

    /// <summary>
    /// The .maps relocations: each puts a map into a slot of a map-in-map's <c>values</c> array, or a
    /// program into a slot of a PROG_ARRAY's (libbpf's bpf_object__collect_map_relos). The slot is the
    /// relocation's pointer index inside that member. A program slot names a function here;
    /// <see cref="ObjectFile"/> checks that it is an entry-point program once the programs are known.
    /// </summary>
    void InitInnerMaps(ElfSection section, List<ElfSymbol> symbols)
    {
        foreach (var r in _elf.RelocationsFor(section))
        {
            BpfObjectException Fail(string reason) => _elf.Error(section, (long)r.Offset, $"relocation {ProgramLoader.DescribeType(r.Type)} against '{r.Symbol.Name}': {reason}");
            var outerSym = symbols.LastOrDefault(s => s.Value <= r.Offset) ?? throw Fail("it is not inside a map definition");
            var outer = _maps[_bySymbol[section.Index][outerSym.Value]];
            bool progArray = outer.Type == MapType.ProgArray;
            if (!_valuesOffset.TryGetValue(outer.Name, out ulong valuesAt))
                throw Fail($"map '{outer.Name}' is neither a map-in-map nor a prog-array with 'values', so it holds no pointers");
            if (r.Type != ElfRelocationType.Bpf64Abs64) throw Fail($"a {(progArray ? "program" : "map")} pointer in .maps needs R_BPF_64_ABS64");
            ulong at = r.Offset - outerSym.Value;
            if (at < valuesAt || (at - valuesAt) % 8 != 0) throw Fail($"offset {at} of map '{outer.Name}' is not a slot of its 'values'");
            ulong slot = (at - valuesAt) / 8;
            if (slot >= outer.MaxEntries) throw Fail($"slot {slot} of map '{outer.Name}' is past its max_entries {outer.MaxEntries}");
            if (progArray)
            {
                if (r.Symbol.Type != ElfSymbolType.Func || _elf.SectionOf(r.Symbol) is not { IsExecutable: true })
                    throw Fail("it isn't a valid program reference");
                outer.InitialPrograms = new Dictionary<uint, string>(outer.InitialPrograms) { [(uint)slot] = r.Symbol.Name };
                continue;
            }
            if (_elf.SectionOf(r.Symbol) is not { } ts || ts.Index != section.Index || !TryFindDefinition(ts.Index, r.Symbol.Value, out int target))
                throw Fail("the target is not a map of .maps");
            var inner = _maps[target];
            var t = outer.InnerMap!;
            if (inner.Type != t.Type || inner.KeySize != t.KeySize || inner.ValueSize != t.ValueSize || inner.MaxEntries != t.MaxEntries)
                throw Fail($"map '{inner.Name}' ({inner}) does not match the inner map of '{outer.Name}' ({t})");
            var slots = new Dictionary<uint, string>(outer.InitialInnerMaps) { [(uint)slot] = inner.Name };
            outer.InitialInnerMaps = slots;
        }
    }

    /// <summary>Byte offset of each map-in-map's <c>values</c> member in its definition, by map name.</summary>
    readonly Dictionary<string, ulong> _valuesOffset = [];

    MapSpec ReadBtfMap(ElfSection section, ElfSymbol sym, uint defType, string name, out bool hasValues)
    {
        var btf = _btf!;
        BpfObjectException Fail(string reason) => _elf.Error(section, (long)sym.Value, $"map '{name}': {reason}");
        var def = btf.Resolve(defType);
        if (def.Kind != BtfKind.Struct)
            throw Fail($"definition is a {def.Kind.ToString().ToUpperInvariant()}, not a struct");
        MapSpec? inner = null;
        hasValues = false;

        uint? type = null, keySize = null, valueSize = null, maxEntries = null, flags = null, pinning = null, numa = null;
        uint keyType = 0, valueType = 0;
        var members = BtfLists.Items(def.Members);
        foreach (var m in members)
        {
            switch (m.Name)
            {
                case "type": type = UIntMember(m, Fail); break;
                case "max_entries": maxEntries = UIntMember(m, Fail); break;
                case "map_flags": flags = UIntMember(m, Fail); break;
                case "pinning": pinning = UIntMember(m, Fail); break;
                case "numa_node": numa = UIntMember(m, Fail); break;
                case "key_size": keySize = Agreeing(keySize, UIntMember(m, Fail), "key", Fail); break;
                case "value_size": valueSize = Agreeing(valueSize, UIntMember(m, Fail), "value", Fail); break;
                case "key":
                    keyType = PointerTarget(m, Fail);
                    keySize = Agreeing(keySize, Sized(keyType, "key", Fail), "key", Fail);
                    break;
                case "value":
                    valueType = PointerTarget(m, Fail);
                    valueSize = Agreeing(valueSize, Sized(valueType, "value", Fail), "value", Fail);
                    break;
                case "values":
                    {
                        // __array(values, struct inner): an array of pointers to the inner map's definition;
                        // for a PROG_ARRAY, __array(values, int (void *)): an array of pointers to functions.
                        var mt = type is uint t0 ? (MapType)t0 : MapType.Unspec;
                        bool progArray = mt == MapType.ProgArray;
                        if (name.EndsWith(".inner", StringComparison.Ordinal)) throw Fail("multi-level inner maps are not supported");
                        if (m != members[^1]) throw Fail("'values' member should be last");
                        if (mt is not (MapType.ArrayOfMaps or MapType.HashOfMaps) && !progArray)
                            throw Fail("'values' needs a map-in-map (ARRAY_OF_MAPS, HASH_OF_MAPS) or PROG_ARRAY type declared before it");
                        if (valueSize is { } vs && vs != 4) throw Fail($"conflicting value size {vs} != 4");
                        var array = btf.Resolve(m.TypeId);
                        if (array.Kind != BtfKind.Array) throw Fail("'values' is not an array");
                        var ptr = btf.Resolve(array.ElementType);
                        if (ptr.Kind != BtfKind.Ptr) throw Fail("'values' is not an array of pointers");
                        if (progArray)
                        {
                            if (btf.Resolve(ptr.SizeOrType).Kind != BtfKind.FuncProto)
                                throw Fail($"prog-array value def is of unexpected kind {btf.Resolve(ptr.SizeOrType).Kind.ToString().ToUpperInvariant()}");
                        }
                        else inner = ReadBtfMap(section, sym, ptr.SizeOrType, name + ".inner", out _);
                        valueSize = 4;
                        _valuesOffset[name] = m.BitOffset / 8;
                        hasValues = true;
                        break;
                    }
                default:
                    throw Fail($"unknown map definition member '{m.Name}'");
            }
        }
        if (type == null) throw Fail("definition has no 'type' member");
        var mapType = CheckType(type.Value, section, (long)sym.Value, name);
        if (pinning is > (uint)PinType.ByName) throw Fail($"unknown pinning type {pinning}");
        if (mapType is MapType.ArrayOfMaps or MapType.HashOfMaps && inner == null)
            throw Fail("a map-in-map needs its inner map declared with __array(values, ...)");
        return new MapSpec(name, mapType, keySize ?? 0, valueSize ?? 0, maxEntries ?? 0)
        {
            InnerMap = inner,
            Flags = flags ?? 0,
            Pinning = (PinType)(pinning ?? 0),
            NumaNode = numa ?? 0,
            Source = MapSource.BtfMaps,
            SectionName = section.Name,
            BtfKeyTypeId = keyType,
            BtfKey = keyType == 0 ? null : MapKeyBtf.Of(btf, keyType),
            BtfValueTypeId = valueType,
            SpinLockOffset = valueType == 0 ? -1 : FieldOffset(valueType, "bpf_spin_lock"),
            TimerOffset = valueType == 0 ? -1 : FieldOffset(valueType, "bpf_timer"),
            Kptrs = valueType == 0 ? [] : KptrFields(valueType, mapType, flags ?? 0, Fail),
        };
    }

    /// <summary>The map types whose values may hold kptrs (map_check_btf; any other: EOPNOTSUPP).</summary>
    static readonly HashSet<MapType> s_kptrMapTypes = [MapType.Hash, MapType.PerCpuHash, MapType.LruHash, MapType.LruPerCpuHash,
        MapType.Array, MapType.PerCpuArray, MapType.SkStorage, MapType.InodeStorage, MapType.TaskStorage, MapType.CgrpStorage];

    /// <summary>
    /// The kernel structs a referenced kptr may point to: those with a destructor kfunc (btf_find_dtor_kfunc) that the
    /// bundled kernel BTF holds. Any other makes the kernel refuse the map (ENOENT).
    /// </summary>
    static readonly HashSet<string> s_kptrDestructible = ["task_struct", "cgroup"];

    /// <summary>
    /// The kptr fields of a struct value type, as the kernel's btf_find_kptr finds them: a top-level pointer member (the
    /// member may be volatile) whose pointer type is tagged <c>kptr</c> or <c>kptr_untrusted</c> and points to a struct,
    /// which is looked up by name in kernel BTF. A pointer to a forward declaration is no kptr (the kernel ignores it).
    /// What the kernel refuses at map creation is refused here; kptrs in nested structs or arrays, <c>__percpu_kptr</c>,
    /// <c>__uptr</c> and structs the program defines (bpf_obj_new's) are refused as unsupported.
    /// </summary>
    List<KptrField> KptrFields(uint valueType, MapType mapType, uint flags, Func<string, BpfObjectException> fail)
    {
        var btf = _btf!;
        var result = new List<KptrField>();
        var value = btf.Resolve(valueType);
        if (value.Kind != BtfKind.Struct) return result;
        foreach (var m in value.Members)
        {
            var t = btf.Type(m.TypeId);
            if (t.Kind == BtfKind.Volatile) t = btf.Type(t.SizeOrType);
            string? tag = t.Kind == BtfKind.Ptr ? TagOf(t.SizeOrType) : null;
            if (tag == null)
            {
                if (ContainsKptr(m.TypeId, 0))
                    throw fail($"member '{m.Name}': kptrs in nested structs or arrays are not supported");
                continue;
            }
            var tagType = btf.Type(t.SizeOrType);
            KptrKind kind;
            if (tag == "kptr_untrusted") kind = KptrKind.Unreferenced;
            else if (tag == "kptr") kind = KptrKind.Referenced;
            else if (tag is "percpu_kptr" or "uptr") throw fail($"member '{m.Name}': __{tag} fields are not supported");
            else continue;   // another tag (__user, __rcu, ...): a plain pointer, as the live kernel treats it
            if (btf.Type(tagType.SizeOrType).Kind == BtfKind.TypeTag) throw fail($"member '{m.Name}': a kptr takes one type tag, it has more (EINVAL)");
            var pointee = btf.Resolve(tagType.SizeOrType);
            if (pointee.Kind == BtfKind.Fwd) continue;
            if (pointee.Kind != BtfKind.Struct) throw fail($"member '{m.Name}': a kptr must point to a struct (EINVAL)");
            if (m.BitOffset % 64 != 0) throw fail($"member '{m.Name}': a kptr must be 8-byte aligned (bit offset {m.BitOffset})");
            if (KernelBtf.FindStruct(pointee.Name) == null)
                throw fail($"member '{m.Name}': struct {pointee.Name} is not in the bundled kernel BTF (kptrs to program types are not supported)");
            if (kind == KptrKind.Referenced && !s_kptrDestructible.Contains(pointee.Name))
                throw fail($"member '{m.Name}': struct {pointee.Name} has no destructor kfunc, so it cannot be a referenced kptr (ENOENT)");
            result.Add(new KptrField((int)(m.BitOffset / 8), kind, pointee.Name));
        }
        if (result.Count == 0) return result;
        if (!s_kptrMapTypes.Contains(mapType)) throw fail($"a {mapType} map cannot hold kptrs (EOPNOTSUPP)");
        if ((flags & (MapSpec.FlagReadOnlyProgram | FlagWriteOnlyProgram)) != 0) throw fail("a map holding kptrs cannot be BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG (EACCES)");
        return result;

        string? TagOf(uint id)
        {
            var t = btf.Type(id);
            return t.Kind == BtfKind.TypeTag && !t.KindFlag ? t.Name : null;
        }

        bool ContainsKptr(uint id, int depth)
        {
            var t = btf.Resolve(id);
            if (depth > 32) return false;
            return t.Kind switch
            {
                BtfKind.Struct or BtfKind.Union => t.Members.Any(x => btf.Type(x.TypeId) is { Kind: BtfKind.Ptr } p && TagOf(p.SizeOrType) is "kptr" or "kptr_untrusted"
                    || ContainsKptr(x.TypeId, depth + 1)),
                BtfKind.Array => btf.Type(t.ElementType) is { Kind: BtfKind.Ptr } p && TagOf(p.SizeOrType) is "kptr" or "kptr_untrusted" || ContainsKptr(t.ElementType, depth + 1),
                _ => false,
            };
        }
    }

    /// <summary>BPF_F_WRONLY_PROG.</summary>
    const uint FlagWriteOnlyProgram = 0x100;

    /// <summary>
    /// A key or value size given twice (<c>__uint(key_size, 4)</c> and <c>__type(key, u64)</c>, in either order) must
    /// agree: libbpf refuses the object otherwise, with its message (the size seen first, then the new one).
    /// </summary>
    static uint Agreeing(uint? seen, uint size, string what, Func<string, BpfObjectException> fail) =>
        seen is { } first && first != size ? throw fail($"conflicting {what} size {first} != {size}") : size;

    /// <summary>
    /// The byte offset of a top-level member of type <c>struct <paramref name="structName"/></c> (<c>bpf_spin_lock</c>,
    /// <c>bpf_timer</c>) of a struct value type, or -1: the special fields the kernel's btf_parse_fields finds.
    /// </summary>
    int FieldOffset(uint valueType, string structName)
    {
        var value = _btf!.Resolve(valueType);
        if (value.Kind != BtfKind.Struct) return -1;
        foreach (var m in BtfLists.Items(value.Members))
        {
            var t = _btf.Resolve(m.TypeId);
            if (t.Kind == BtfKind.Struct && t.Name == structName) return (int)(m.BitOffset / 8);
        }
        return -1;
    }

    /// <summary>__uint(name, val) is <c>int (*name)[val]</c>: a pointer to an array whose length is the value.</summary>
    uint UIntMember(BtfMember m, Func<string, BpfObjectException> fail)
    {
        var ptr = _btf!.Resolve(m.TypeId);
        if (ptr.Kind != BtfKind.Ptr) throw fail($"member '{m.Name}' is not a pointer (__uint encodes values as int (*)[N])");
        var array = _btf.Resolve(ptr.SizeOrType);
        if (array.Kind != BtfKind.Array) throw fail($"member '{m.Name}' does not point to an array (__uint encodes values as int (*)[N])");
        return array.ElementCount;
    }

    /// <summary>__type(name, T) is <c>T *name</c>: the member's pointee is the type.</summary>
    uint PointerTarget(BtfMember m, Func<string, BpfObjectException> fail)
    {
        var ptr = _btf!.Resolve(m.TypeId);
        if (ptr.Kind != BtfKind.Ptr) throw fail($"member '{m.Name}' is not a pointer to a type (__type)");
        return ptr.SizeOrType;
    }

    uint Sized(uint typeId, string what, Func<string, BpfObjectException> fail)
    {
        ulong size;
        try { size = _btf!.Size(typeId); }
        catch (BpfObjectException e) { throw fail($"{what} type: {e.Reason}"); }
        catch (OverflowException) { throw fail($"{what} type is too large"); }
        if (size > uint.MaxValue) throw fail($"{what} type is too large ({size} bytes)");
        return (uint)size;
    }

    MapType CheckType(uint type, ElfSection section, long offset, string name)
    {
        if (!MapTypes.IsDefined((MapType)type))
            throw _elf.Error(section, offset, $"map '{name}': unknown map type {type}");
        if (type == (uint)MapType.Unspec)
            throw _elf.Error(section, offset, $"map '{name}': map type 0 (unspec) is not a map type");
        return (MapType)type;
    }

    void LoadGlobalData(ElfSection section)
    {
        if (section.Size == 0) return;
        // No limit of the loader's own: as libbpf, the section's size is the map's value_size and BPF_MAP_CREATE
        // judges it (the kernel takes an ARRAY value up to INT_MAX bytes). It must fit the attribute's u32.
        if (section.Size > uint.MaxValue)
            throw _elf.Error(section, null, $"global data section is too large (0x{section.Size:x} bytes, value_size is a u32)");
        bool readOnly = IsKind(section.Name, ".rodata");
        // A .bss has no bytes in the file and its map starts zeroed: nothing to copy, so nothing is allocated here
        // (a 1 GiB .bss costs nothing until the program touches it).
        var value = section.Type == ElfSectionType.NoBits ? [] : _elf.Data(section).ToArray();
        var datasec = _btf?.Datasec(section.Name);
        var spec = new MapSpec(section.Name, MapType.Array, 4, (uint)section.Size, 1)
        {
            Flags = MapSpec.FlagMmapable | (readOnly ? MapSpec.FlagReadOnlyProgram : 0),
            Source = MapSource.GlobalData,
            SectionName = section.Name,
            InitialValue = value,
            Frozen = readOnly,
            BtfKeyTypeId = 0,
            BtfValueTypeId = datasec?.Id ?? 0,
        };
        if (_maps.Any(m => m.Name == spec.Name))
            throw _elf.Error(section, null, $"duplicate map name '{spec.Name}'");
        _dataBySection[section.Index] = _maps.Count;
        _maps.Add(spec);
    }
}
