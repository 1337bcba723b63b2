namespace BpfJit.Frontend.Elf;

/// <summary>
/// A map as declared in an object file: plain data, nothing is created. The host may change the
/// sizes and entry count before the map is created (for example tubular's <c>destinations</c> map,
/// declared with zero key and value sizes).
/// </summary>
public sealed class MapSpec
{
    /// <summary>Creates a map spec.</summary>
    public MapSpec(string name, MapType type, uint keySize, uint valueSize, uint maxEntries)
    {
        Name = name;
        Type = type;
        KeySize = keySize;
        ValueSize = valueSize;
        MaxEntries = maxEntries;
    }

    /// <summary>The map's name: the symbol name, or the section name for global data (<c>.rodata</c>).</summary>
    public string Name { get; }

    /// <summary>The map type.</summary>
    public MapType Type { get; set; }

    /// <summary>Key size in bytes.</summary>
    public uint KeySize { get; set; }

    /// <summary>Value size in bytes.</summary>
    public uint ValueSize { get; set; }

    /// <summary>Maximum number of entries.</summary>
    public uint MaxEntries { get; set; }

    /// <summary>map_flags (BPF_F_NO_PREALLOC = 1, BPF_F_RDONLY_PROG = 0x80, ...).</summary>
    public uint Flags { get; set; }

    /// <summary>Pinning requested by the object.</summary>
    public PinType Pinning { get; set; }

    /// <summary>NUMA node (only meaningful with BPF_F_NUMA_NODE).</summary>
    public uint NumaNode { get; set; }

    /// <summary>Where the definition came from.</summary>
    public MapSource Source { get; init; }

    /// <summary>The ELF section the definition is in.</summary>
    public string SectionName { get; init; } = "";

    /// <summary>
    /// Initial contents of the single value of a global-data map: the section's bytes, empty for <c>.bss</c> (its
    /// value starts zeroed); null for ordinary maps. Bytes past its end are zeros.
    /// </summary>
    public byte[]? InitialValue { get; set; }

    /// <summary>True for read-only global data (<c>.rodata*</c>): the map is frozen after its value is written.</summary>
    public bool Frozen { get; set; }

    /// <summary>BTF type id of the key, or 0 when unknown.</summary>
    public uint BtfKeyTypeId { get; init; }

    /// <summary>The key's BTF type as BPF_MAP_CREATE's map_check_btf sees it (modifiers and typedefs resolved), or null without one.</summary>
    public MapKeyBtf? BtfKey { get; init; }

    /// <summary>BTF type id of the value, or 0 when unknown.</summary>
    public uint BtfValueTypeId { get; init; }

    /// <summary>Offset of the <c>struct bpf_spin_lock</c> member of the BTF value type, or -1 when it has none.</summary>
    public int SpinLockOffset { get; init; } = -1;

    /// <summary>Offset of the <c>struct bpf_timer</c> member of the BTF value type, or -1 when it has none.</summary>
    public int TimerOffset { get; init; } = -1;

    /// <summary>
    /// The kptr fields of the BTF value type (pointer members tagged <c>__kptr</c> or <c>__kptr_untrusted</c>), by offset;
    /// empty when it has none (<see cref="KptrField"/>).
    /// </summary>
    public IReadOnlyList<KptrField> Kptrs { get; init; } = [];

    /// <summary>
    /// For a map-in-map (ARRAY_OF_MAPS, HASH_OF_MAPS declared with <c>__array(values, struct inner)</c>):
    /// the inner map's definition, which every map stored in it must match; null otherwise.
    /// </summary>
    public MapSpec? InnerMap { get; init; }

    /// <summary>
    /// For a map-in-map: the maps the object puts in it (<c>.values = { [0] = &amp;inner1 }</c>), by slot
    /// (the key of an ARRAY_OF_MAPS); empty otherwise.
    /// </summary>
    public IReadOnlyDictionary<uint, string> InitialInnerMaps { get; set; } = new Dictionary<uint, string>();

    /// <summary>
    /// For a PROG_ARRAY declared with <c>__array(values, int (void *))</c>: the programs the object puts in it
    /// (<c>.values = { [0] = (void *)&amp;prog }</c>), by slot, named as in <see cref="CollectionSpec.Programs"/>;
    /// empty otherwise. A host stores them once it has loaded the programs, as libbpf does after BPF_PROG_LOAD.
    /// </summary>
    public IReadOnlyDictionary<uint, string> InitialPrograms { get; set; } = new Dictionary<uint, string>();

    /// <summary>BPF_F_RDONLY_PROG: the program may not write to the map.</summary>
    public const uint FlagReadOnlyProgram = 0x80;

    /// <summary>BPF_F_MMAPABLE: the map may be memory-mapped (set for global data).</summary>
    public const uint FlagMmapable = 0x400;

    /// <summary>Sets both sizes at once and returns this spec, for fix-ups like <c>spec.Maps["destinations"].WithSizes(257, 8)</c>.</summary>
    public MapSpec WithSizes(uint keySize, uint valueSize)
    {
        KeySize = keySize;
        ValueSize = valueSize;
        return this;
    }

    /// <summary>A copy of this spec (the initial value is copied too).</summary>
    public MapSpec Clone() => new(Name, Type, KeySize, ValueSize, MaxEntries)
    {
        Flags = Flags,
        Pinning = Pinning,
        NumaNode = NumaNode,
        Source = Source,
        SectionName = SectionName,
        InitialValue = InitialValue?.ToArray(),
        Frozen = Frozen,
        BtfKeyTypeId = BtfKeyTypeId,
        BtfKey = BtfKey,
        BtfValueTypeId = BtfValueTypeId,
        SpinLockOffset = SpinLockOffset,
        TimerOffset = TimerOffset,
        Kptrs = Kptrs,
        InnerMap = InnerMap?.Clone(),
        InitialInnerMaps = new Dictionary<uint, string>(InitialInnerMaps),
        InitialPrograms = new Dictionary<uint, string>(InitialPrograms),
    };

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name}: {Type} key {KeySize} value {ValueSize} max_entries {MaxEntries} flags 0x{Flags:x}";
}

/// <summary>The maps of a collection, by position (the index used in map references) and by name.</summary>
public sealed class MapSpecList : IReadOnlyList<MapSpec>
{
    readonly List<MapSpec> _maps;

    /// <summary>Creates the list.</summary>
    public MapSpecList(IEnumerable<MapSpec> maps) => _maps = maps.ToList();

    /// <summary>The map at <paramref name="index"/> (the imm of an ld_imm64 with src 5 or 6).</summary>
    public MapSpec this[int index] => _maps[index];

    /// <summary>The map called <paramref name="name"/>; throws <see cref="KeyNotFoundException"/> when there is none.</summary>
    public MapSpec this[string name] =>
        TryGet(name, out var map) ? map : throw new KeyNotFoundException($"no map named '{name}'");

    /// <summary>Number of maps.</summary>
    public int Count => _maps.Count;

    /// <summary>Finds a map by name.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MapSpec? map)
    {
        map = _maps.Find(m => m.Name == name);
        return map != null;
    }

    /// <summary>The index of the map called <paramref name="name"/>, or -1.</summary>
    public int IndexOf(string name) => _maps.FindIndex(m => m.Name == name);

    /// <inheritdoc />
    public IEnumerator<MapSpec> GetEnumerator() => _maps.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>The kinds of kptr field (the kernel's BPF_KPTR_UNREF and BPF_KPTR_REF).</summary>
public enum KptrKind
{
    /// <summary><c>__kptr_untrusted</c>: a plain pointer the program stores and loads; it loads as untrusted_ptr_or_null_.</summary>
    Unreferenced,
    /// <summary><c>__kptr</c>: a referenced pointer, moved in and out with bpf_kptr_xchg; it loads as rcu_ptr_or_null_.</summary>
    Referenced,
}

/// <summary>
/// A kptr field of a map value: an 8-byte pointer member at <paramref name="Offset"/> whose pointee is the kernel struct
/// <paramref name="Struct"/> (looked up by name in kernel BTF, as the kernel's btf_parse_kptr does).
/// </summary>
/// <param name="Offset">Byte offset of the member in the value.</param>
/// <param name="Kind">Unreferenced (<c>__kptr_untrusted</c>) or referenced (<c>__kptr</c>).</param>
/// <param name="Struct">The pointee's struct name (<c>task_struct</c>).</param>
public sealed record KptrField(int Offset, KptrKind Kind, string Struct)
{
    /// <summary>Size of a kptr field.</summary>
    public const int Size = 8;
}

/// <summary>
/// A map's BTF key type as the kernel checks it when the map is created (btf_type_id_size resolves modifiers and
/// typedefs): its kind, its name as C spells it, and for an int its bits and bit offset (BTF_INT_BITS, BTF_INT_OFFSET).
/// </summary>
/// <param name="Kind">The resolved type's kind.</param>
/// <param name="Name">The type as C names it (<c>int</c>, <c>struct key</c>, <c>enum e</c>).</param>
/// <param name="IntBits">An int's BTF_INT_BITS (0 for other kinds).</param>
/// <param name="IntOffset">An int's BTF_INT_OFFSET (0 for other kinds).</param>
public sealed record MapKeyBtf(Btf.BtfKind Kind, string Name, int IntBits, int IntOffset)
{
    /// <summary>
    /// True for a plain 32-bit int (BTF_KIND_INT, 32 bits at offset 0): the only key type the kernel's local-storage and array
    /// maps take (bpf_local_storage_map_check_btf, array_map_check_btf).
    /// </summary>
    public bool IsInt32 => Kind == Btf.BtfKind.Int && IntBits == 32 && IntOffset == 0;

    /// <summary>The key type of <paramref name="typeId"/> in <paramref name="btf"/>, modifiers and typedefs resolved.</summary>
    public static MapKeyBtf Of(Btf.BtfSpec btf, uint typeId)
    {
        System.ArgumentNullException.ThrowIfNull(btf);
        var t = btf.Resolve(typeId);
        string name = t.Kind switch
        {
            Btf.BtfKind.Struct => "struct ",
            Btf.BtfKind.Union => "union ",
            Btf.BtfKind.Enum or Btf.BtfKind.Enum64 => "enum ",
            _ => "",
        } + (t.Name.Length > 0 ? t.Name : t.Kind == Btf.BtfKind.Array ? "array" : "(anon)");
        return t.Kind == Btf.BtfKind.Int ? new(t.Kind, name, t.IntBits, t.IntOffset) : new(t.Kind, name, 0, 0);
    }

    /// <inheritdoc />
    public override string ToString() => Kind == Btf.BtfKind.Int ? $"{Name} ({IntBits} bits at bit {IntOffset})" : $"{Name} ({Kind.ToString().ToUpperInvariant()})";
}
