using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.Maps;

/// <summary>The attributes a map is created with (the map fields of the kernel's bpf_attr for BPF_MAP_CREATE).</summary>
/// <param name="Name">The map's name (object file symbol).</param>
/// <param name="Type">The map type.</param>
/// <param name="KeySize">Key size in bytes.</param>
/// <param name="ValueSize">Value size in bytes.</param>
/// <param name="MaxEntries">Maximum entries (byte size for RINGBUF).</param>
/// <param name="Flags">BPF_F_* creation flags (<see cref="MapFlags"/>).</param>
/// <param name="SpinLockOffset">Offset of a struct bpf_spin_lock in the value (from BTF), or -1.</param>
/// <param name="InnerMap">
/// For ARRAY_OF_MAPS and HASH_OF_MAPS: the template every stored map must match (the kernel takes a live map's
/// fd, inner_map_fd; here its <see cref="BpfMap.Definition"/> or the object's inner map declaration).
/// </param>
/// <param name="NumaNode">numa_node, read only with BPF_F_NUMA_NODE: the host is one node, 0.</param>
/// <param name="TimerOffset">Offset of a struct bpf_timer in the value (from BTF), or -1.</param>
/// <param name="Btf">
/// True when the map is created with BTF key and value types (the kernel's btf_key_type_id and btf_value_type_id, as an
/// object's BTF-defined map has them): TASK_STORAGE and CGRP_STORAGE require them.
/// </param>
/// <param name="Kptrs">
/// The value's kptr fields (<c>__kptr</c>, <c>__kptr_untrusted</c> members, from BTF), or null: userspace never reads or
/// writes them (they read as 0), and an update or delete frees what they hold.
/// </param>
/// <param name="BtfKey">
/// The BTF key type (an object's BTF-defined map: <see cref="MapSpec.BtfKey"/>), or null: TASK_STORAGE and CGRP_STORAGE
/// take only a 32-bit int (<see cref="MapKeyBtf.IsInt32"/>).
/// </param>
public sealed record MapDefinition(string Name, MapType Type, int KeySize, int ValueSize, int MaxEntries, uint Flags = 0, int SpinLockOffset = -1,
    MapDefinition? InnerMap = null, uint NumaNode = 0, int TimerOffset = -1, bool Btf = false, IReadOnlyList<KptrField>? Kptrs = null,
    MapKeyBtf? BtfKey = null);

/// <summary>A map could not be created: the kernel's BPF_MAP_CREATE would have failed with <see cref="Errno"/>.</summary>
public sealed class MapCreateException : BpfException
{
    /// <summary>Creates the error for map <paramref name="name"/>.</summary>
    public MapCreateException(string name, MapType type, int errno, string reason)
        : base($"map {name} ({type}): {reason} (-{Runtime.Errno.Name(errno)})")
    {
        MapName = name;
        Type = type;
        Errno = errno;
        Reason = reason;
    }

    /// <summary>The map's name.</summary>
    public string MapName { get; }

    /// <summary>The map's type.</summary>
    public MapType Type { get; }

    /// <summary>The positive errno the kernel returns (EINVAL, E2BIG, ENOTSUPP).</summary>
    public int Errno { get; }

    /// <summary>What is wrong.</summary>
    public string Reason { get; }
}

/// <summary>
/// Creates maps with the kernel's validation of BPF_MAP_CREATE attributes. Types this project builds
/// elsewhere (SOCKMAP, SOCKHASH) plug in with <see cref="Register"/>.
/// </summary>
public static class MapFactory
{
    /// <summary>The kernel's page size, the granule of ring buffer sizes.</summary>
    public const int PageSize = 4096;

    /// <summary>MAX_BPF_STACK: the largest SOCKHASH key.</summary>
    public const int MaxKeySize = BpfAbi.StackSize;

    /// <summary>PCPU_MIN_UNIT_SIZE: the largest per-CPU value.</summary>
    public const int MaxPerCpuValueSize = 32 * 1024;

    /// <summary>LPM_DATA_SIZE_MAX: the largest LPM key data (after the 4-byte prefix length).</summary>
    public const int MaxLpmDataSize = 256;

    // Keyed by the type's number: a dictionary keyed by the enum itself makes RyuJIT compile the framework's enum
    // comparer at a process's first map (docs/perf.md, "Cold start").
    static readonly Dictionary<uint, Func<MapDefinition, BpfMap>> s_custom = [];
    static readonly Lock s_lock = new();

    /// <summary>Registers the constructor of a map type built outside this folder (it validates its own attributes).</summary>
    public static void Register(MapType type, Func<MapDefinition, BpfMap> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        lock (s_lock) s_custom[(uint)type] = create;
    }

    // The types Create builds itself; keep in step with its switch.
    static readonly MapType[] s_builtIn =
    [
        MapType.Array, MapType.PerCpuArray, MapType.Hash, MapType.PerCpuHash, MapType.LruHash, MapType.LruPerCpuHash,
        MapType.LpmTrie, MapType.ProgArray, MapType.PerfEventArray, MapType.RingBuf, MapType.UserRingBuf, MapType.ArrayOfMaps, MapType.HashOfMaps,
        MapType.Queue, MapType.Stack, MapType.TaskStorage, MapType.CgrpStorage, MapType.CgroupArray,
    ];

    /// <summary>
    /// The map types <see cref="Create(MapDefinition)"/> can make, by kernel id: the built-in ones and those
    /// registered with <see cref="Register"/> (SOCKMAP and SOCKHASH, when the runtime assembly loads).
    /// </summary>
    public static IReadOnlyList<MapType> SupportedTypes
    {
        get
        {
            lock (s_lock) return [.. s_builtIn.Concat(s_custom.Keys.Select(k => (MapType)k)).Distinct().Order()];
        }
    }

    /// <summary>Creates a map; throws <see cref="MapCreateException"/> where the kernel would fail.</summary>
    public static BpfMap Create(MapType type, int keySize, int valueSize, int maxEntries, uint flags = 0, string name = "", int spinLockOffset = -1) =>
        Create(new MapDefinition(name, type, keySize, valueSize, maxEntries, flags, spinLockOffset));

    /// <summary>
    /// Creates a map from its definition; throws <see cref="MapCreateException"/> where the kernel would fail.
    /// A negative size stands for the u32 with the same bits (what BPF_MAP_CREATE would read).
    /// </summary>
    public static BpfMap Create(MapDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var d = Validate(definition);
        var attributes = MapAttributes.Of(definition);
        Func<MapDefinition, BpfMap>? custom;
        lock (s_lock) s_custom.TryGetValue((uint)d.Type, out custom);
        long charge = MapMemory.Charge(d.Name, attributes, MapMemory.Footprint(attributes));
        BpfMap map;
        try
        {
            map = custom != null ? custom(d) : d.Type switch
            {
                MapType.Array => new ArrayMap(d),
                MapType.PerCpuArray => new PerCpuArrayMap(d),
                MapType.Hash or MapType.PerCpuHash or MapType.LruHash or MapType.LruPerCpuHash => new HashMap(d),
                MapType.LpmTrie => new LpmTrieMap(d),
                MapType.ProgArray => new ProgArrayMap(d),
                MapType.PerfEventArray => new PerfEventArrayMap(d),
                MapType.RingBuf => new RingBufMap(d),
                MapType.UserRingBuf => new UserRingBufMap(d),
                MapType.ArrayOfMaps or MapType.HashOfMaps => MapOfMaps.Construct(d),
                MapType.Queue or MapType.Stack => new QueueStackMap(d),
                MapType.TaskStorage or MapType.CgrpStorage => new LocalStorageMap(d),
                MapType.CgroupArray => new CgroupArrayMap(d),
                _ => throw Unsupported(d),
            };
        }
        catch (OutOfMemoryException)
        {
            // The managed slot arrays (PROG_ARRAY, PERF_EVENT_ARRAY, SOCKMAP) can exceed what the GC gives.
            MapMemory.Uncharge(charge);
            throw new MapCreateException(d.Name, d.Type, Errno.ENOMEM, $"cannot allocate the map's {MapMemory.Footprint(attributes)} bytes");
        }
        catch
        {
            MapMemory.Uncharge(charge);
            throw;
        }
        map.SetMemoryCharge(charge);
        return map;
    }

    /// <summary>
    /// Everything <see cref="Create(MapDefinition)"/> checks before it allocates, allocating nothing (an object's maps
    /// checked by <see cref="Loading.BpfCollection.ValidateMaps"/>): <see cref="Validate"/>, a constructor for the type, and
    /// the map's memory beside what live maps hold and <paramref name="pending"/> bytes more (the object's maps created
    /// before it). Returns the bytes the map would be charged; throws the <see cref="MapCreateException"/> Create throws.
    /// </summary>
    internal static ulong Admit(MapDefinition definition, long pending)
    {
        var d = Validate(definition);
        if (!Constructible(d.Type)) throw Unsupported(d);
        var attributes = MapAttributes.Of(definition);
        ulong footprint = MapMemory.Footprint(attributes);
        MapMemory.CheckFits(d.Name, attributes, footprint, pending);
        return footprint;
    }

    static bool Constructible(MapType type)
    {
        foreach (var t in s_builtIn)
            if ((uint)t == (uint)type) return true;
        lock (s_lock) return s_custom.ContainsKey((uint)type);
    }

    static MapCreateException Unsupported(MapDefinition d) => new(d.Name, d.Type, Errno.EINVAL, $"map type {d.Type} is not supported by this runtime");

    /// <summary>
    /// The checks of BPF_MAP_CREATE without creating anything: the type's attribute checks in the kernel's order, a
    /// map-in-map's template, the spin lock, and whether the map's memory fits <see cref="MapMemory.Limit"/>.
    /// Returns the definition the map is created with (an LPM_TRIE's max_entries above 2^31 - 1 is held as 2^31 - 1).
    /// Throws <see cref="MapCreateException"/> with the kernel's errno and a message naming the map and the field.
    /// </summary>
    public static MapDefinition Validate(MapDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var d = definition;
        var a = MapAttributes.Of(d);
        // array_of_map_alloc_check takes the template (inner_map_fd) first; htab_of_map_alloc after the hash checks.
        if (d.Type == MapType.ArrayOfMaps) MapOfMaps.CheckTemplate(d);
        MapCreateChecks.Check(d.Name, a);
        if (d.Type == MapType.HashOfMaps) MapOfMaps.CheckTemplate(d);
        CheckSpinLock(d, allowed: d.Type is MapType.Array or MapType.Hash or MapType.LruHash or MapType.TaskStorage or MapType.CgrpStorage);
        CheckTimer(d);
        CheckKptrs(d);
        var footprint = MapMemory.Footprint(a);
        if (footprint > (ulong)MapMemory.Limit)
            Fail(d, Errno.ENOMEM, $"the map needs {footprint} bytes, more than the map memory limit of {MapMemory.Limit} bytes");
        // Past the kernel's checks, an LPM_TRIE (nothing preallocated) is the only map that may keep a field
        // above 2^31 - 1; every other such map needs at least 2 GiB in one block, more than this runtime maps for one map.
        if (a.MaxEntries > int.MaxValue)
        {
            if (d.Type != MapType.LpmTrie)
                Fail(d, Errno.ENOMEM, $"max_entries {a.MaxEntries} exceeds {int.MaxValue}, the most this runtime allocates for one map");
            d = d with { MaxEntries = int.MaxValue };
        }
        // The maps whose slots are managed arrays hold at most Array.MaxLength of them: more fails each creation (the
        // runtime's OutOfMemoryException), so it is refused here too, where a host validates without creating.
        if (d.Type is MapType.ProgArray or MapType.PerfEventArray or MapType.CgroupArray or MapType.ArrayOfMaps or MapType.SockMap
            or MapType.ReuseportSockArray && a.MaxEntries > (uint)Array.MaxLength)
            Fail(d, Errno.ENOMEM, $"max_entries {a.MaxEntries} exceeds {Array.MaxLength}, the most slots this runtime holds for one map");
        if (d.Type == MapType.PerCpuArray && (long)Native.Round8(d.ValueSize) * d.MaxEntries > PerCpuArrayMap.MaxRegion)
            Fail(d, Errno.ENOMEM, "the map's slots for one CPU exceed 2 GiB");
        return d;
    }

    static void CheckSpinLock(MapDefinition d, bool allowed)
    {
        if (d.SpinLockOffset < 0) return;
        if (!allowed) Fail(d, Errno.EINVAL, "this map type cannot hold a bpf_spin_lock");
        if (d.SpinLockOffset % 4 != 0 || d.SpinLockOffset + BpfSpinLock.Size > d.ValueSize)
            Fail(d, Errno.EINVAL, $"bpf_spin_lock at offset {d.SpinLockOffset} does not fit the value");
    }

    // map_check_btf: a bpf_timer lives only in HASH, LRU_HASH and ARRAY values (-EOPNOTSUPP elsewhere), 8-byte
    // aligned (btf_find_struct), and shares no byte with the value's bpf_spin_lock.
    static void CheckTimer(MapDefinition d)
    {
        if (d.TimerOffset < 0) return;
        if (d.Type is not (MapType.Array or MapType.Hash or MapType.LruHash))
            Fail(d, Errno.EOPNOTSUPP, "this map type cannot hold a bpf_timer");
        if (d.TimerOffset % 8 != 0 || d.TimerOffset + BpfTimers.Size > d.ValueSize)
            Fail(d, Errno.EINVAL, $"bpf_timer at offset {d.TimerOffset} does not fit the value");
        if (d.SpinLockOffset >= 0 && d.SpinLockOffset < d.TimerOffset + BpfTimers.Size && d.TimerOffset < d.SpinLockOffset + BpfSpinLock.Size)
            Fail(d, Errno.EINVAL, "bpf_timer overlaps the value's bpf_spin_lock");
    }

    // map_check_btf for kptrs: HASH, LRU_HASH and ARRAY values here (the kernel also allows the per-CPU and storage maps,
    // which BpfJit does not), each field 8-byte aligned inside the value and apart from the lock, the timer and each other.
    static void CheckKptrs(MapDefinition d)
    {
        if (d.Kptrs is not { Count: > 0 } kptrs) return;
        if (d.Type is not (MapType.Array or MapType.Hash or MapType.LruHash))
            Fail(d, Errno.EOPNOTSUPP, "BpfJit holds kptrs only in HASH, LRU_HASH and ARRAY values");
        if ((d.Flags & (MapFlags.ReadOnlyProg | MapFlags.WriteOnlyProg)) != 0) Fail(d, Errno.EACCES, "a map holding kptrs cannot be BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG");
        foreach (var k in kptrs)
        {
            if (k.Offset < 0 || k.Offset % 8 != 0 || k.Offset + KptrField.Size > d.ValueSize)
                Fail(d, Errno.EINVAL, $"kptr at offset {k.Offset} does not fit the value");
            bool Overlaps(int off, int size) => off >= 0 && off < k.Offset + KptrField.Size && k.Offset < off + size;
            if (Overlaps(d.SpinLockOffset, BpfSpinLock.Size) || Overlaps(d.TimerOffset, BpfTimers.Size)
                || kptrs.Any(o => !ReferenceEquals(o, k) && Overlaps(o.Offset, KptrField.Size)))
                Fail(d, Errno.EINVAL, $"kptr at offset {k.Offset} overlaps another special field");
        }
    }

    internal static void Fail(MapDefinition d, int errno, string reason) => throw new MapCreateException(d.Name, d.Type, errno, reason);
}
