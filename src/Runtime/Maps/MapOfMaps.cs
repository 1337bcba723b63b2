using BpfJit.Frontend;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_ARRAY_OF_MAPS and HASH_OF_MAPS (the kernel's kernel/bpf/map_in_map.c with arraymap.c and
/// hashtab.c): each element holds another live map that matches the outer map's template
/// (<see cref="MapDefinition.InnerMap"/>, the kernel's inner_map_meta). A program's
/// <c>bpf_map_lookup_elem</c> returns the stored map's <see cref="BpfMap.Handle"/>, the map pointer the map
/// helpers take; userspace stores a map with <see cref="SetMap(ReadOnlySpan{byte}, BpfMap?, ulong)"/> (or the
/// byte API with a u32 map id where the kernel takes a map fd) and a lookup returns the stored map's
/// <see cref="BpfMap.Id"/>. A stored map stays alive while it is stored, even after its owner disposes it.
/// </summary>
public abstract unsafe class MapOfMaps : BpfMap
{
    private protected MapOfMaps(MapDefinition definition) : base(definition) => Template = definition.InnerMap!;

    /// <summary>The shape every stored map must have (the kernel's inner_map_meta).</summary>
    public MapDefinition Template { get; }

    /// <summary>
    /// bpf_map_meta_alloc: the template (the kernel's inner_map_fd) must exist, be one level deep and be a type
    /// that can compare its shape; it is itself checked as BPF_MAP_CREATE checked the live map it stands for.
    /// </summary>
    internal static void CheckTemplate(MapDefinition d)
    {
        var t = d.InnerMap;
        if (t == null) MapFactory.Fail(d, Errno.EBADF, "no inner map (inner_map_fd) to take the template from");
        if (t!.Type is MapType.ArrayOfMaps or MapType.HashOfMaps) MapFactory.Fail(d, Errno.EINVAL, "the inner map is itself a map-in-map");
        if (t.Type == MapType.ProgArray) MapFactory.Fail(d, Errno.ENOTSUPP, $"a {t.Type} cannot be an inner map");
        try { MapFactory.Validate(t); }
        catch (MapCreateException e) { MapFactory.Fail(d, e.Errno, $"inner map: {e.Reason}"); }
    }

    /// <summary>Builds the map once <see cref="MapFactory.Validate"/> passed.</summary>
    internal static MapOfMaps Construct(MapDefinition d)
    {
        if (d.SpinLockOffset >= 0) MapFactory.Fail(d, Errno.EINVAL, "this map type cannot hold a bpf_spin_lock");
        return d.Type == MapType.ArrayOfMaps ? new ArrayOfMapsMap(d) : new HashOfMapsMap(d);
    }

    /// <summary>
    /// True when <paramref name="map"/> may be stored (the kernel's map_meta_equal): same type, key and value
    /// sizes, flags, spin lock and timer; an array's max_entries too, unless the template has BPF_F_INNER_MAP.
    /// </summary>
    public bool Fits(BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var t = Template;
        if (map.Type != t.Type || map.KeySize != t.KeySize || map.ValueSize != t.ValueSize || map.Flags != t.Flags
            || map.SpinLockOffset != t.SpinLockOffset || map.TimerOffset != t.TimerOffset
            || !map.Kptrs.SequenceEqual(t.Kptrs ?? []))
            return false;
        bool array = t.Type is MapType.Array or MapType.PerCpuArray;
        return !array || (t.Flags & MapFlags.InnerMap) != 0 || map.MaxEntries == t.MaxEntries;
    }

    /// <summary>
    /// Stores <paramref name="map"/> under <paramref name="key"/> (null deletes it), with BPF_ANY, BPF_NOEXIST or
    /// BPF_EXIST: 0, or the kernel's errno (-EINVAL for a map that does not fit the template, -E2BIG for an
    /// index out of range or a full hash, -EEXIST, -ENOENT, -EPERM when userspace may not write).
    /// </summary>
    public int SetMap(ReadOnlySpan<byte> key, BpfMap? map, ulong flags = UpdateFlags.Any)
    {
        if (map == null) return Delete(key);
        ObjectDisposedException.ThrowIf(map.IsDisposed, map);
        Span<byte> value = stackalloc byte[4];
        BitConverter.TryWriteBytes(value, map.Id);
        return Update(key, value, flags);
    }

    /// <summary><see cref="SetMap(ReadOnlySpan{byte}, BpfMap?, ulong)"/> for a u32 key (an ARRAY_OF_MAPS index).</summary>
    public int SetMap(uint key, BpfMap? map, ulong flags = UpdateFlags.Any) => SetMap(BitConverter.GetBytes(key), map, flags);

    /// <summary>The map stored under <paramref name="key"/>, or null.</summary>
    public BpfMap? GetMap(ReadOnlySpan<byte> key)
    {
        Span<byte> id = stackalloc byte[4];
        return Lookup(key, id) == 0 ? FromId(BitConverter.ToUInt32(id)) ?? StoredById(BitConverter.ToUInt32(id)) : null;
    }

    /// <summary>The map stored with id <paramref name="id"/> (also when its owner disposed it), or null.</summary>
    private protected abstract BpfMap? StoredById(uint id);

    /// <summary>The kernel's bpf_map_fd_get_ptr: the map a userspace value names, checked against the template.</summary>
    private protected int Resolve(byte* value, out BpfMap? map)
    {
        map = FromId(*(uint*)value);
        if (map == null) return -Errno.EBADF;
        if (!Fits(map)) { map = null; return -Errno.EINVAL; }
        return 0;
    }
}

/// <summary>BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 index → map.</summary>
public sealed unsafe class ArrayOfMapsMap : MapOfMaps
{
    readonly BpfMap?[] _maps;
    // The handles programs read, beside the maps (a lookup is one bounds check and one load).
    readonly ulong[] _handles;
    readonly Lock _write = new();

    internal ArrayOfMapsMap(MapDefinition definition) : base(definition)
    {
        _maps = new BpfMap?[MaxEntries];
        _handles = new ulong[MaxEntries];
    }

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        uint index = *(uint*)keyPtr;
        return index < (uint)_handles.Length ? Volatile.Read(ref _handles[index]) : 0;
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        uint index = *(uint*)key;
        if (flags != 0) return -Errno.EINVAL;
        var map = index < (uint)_maps.Length ? Volatile.Read(ref _maps[index]) : null;
        if (map == null) return -Errno.ENOENT;
        *(uint*)value = map.Id;
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        // bpf_fd_array_map_update_elem: only BPF_ANY, and the index before the fd.
        if (flags != UpdateFlags.Any) return -Errno.EINVAL;
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        int err = Resolve(value, out var map);
        if (err != 0) return err;
        Replace(index, map);
        return 0;
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key)
    {
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        return Replace(index, null) ? 0 : -Errno.ENOENT;
    }

    // Stores map (or clears the slot) and drops the old map's reference; false when the slot was already empty.
    bool Replace(uint index, BpfMap? map)
    {
        BpfMap? old;
        lock (_write)
        {
            map?.AddRef();
            old = _maps[index];
            Volatile.Write(ref _handles[index], map?.Handle ?? 0);
            Volatile.Write(ref _maps[index], map);
        }
        old?.Release();
        return old != null;
    }

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    private protected override BpfMap? StoredById(uint id) => Array.Find(_maps, m => m?.Id == id);

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        for (uint i = 0; i < _maps.Length; i++) Replace(i, null);
    }
}

/// <summary>
/// BPF_MAP_TYPE_HASH_OF_MAPS: key → map. The elements live in a HASH map whose 8-byte values are the stored
/// maps' handles, so a program's lookup is the hash lookup and one load.
/// </summary>
public sealed unsafe class HashOfMapsMap : MapOfMaps
{
    readonly HashMap _slots;
    readonly Lock _write = new();

    internal HashOfMapsMap(MapDefinition definition) : base(definition) =>
        _slots = new HashMap(new MapDefinition(definition.Name + ".slots", MapType.Hash, definition.KeySize, sizeof(ulong), definition.MaxEntries,
            definition.Flags & (MapFlags.NoPrealloc | MapFlags.NumaNode | MapFlags.ZeroSeed)));

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        ulong slot = _slots.LookupElem(keyPtr);
        return slot == 0 ? 0 : Volatile.Read(ref *(ulong*)slot);
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        if (flags != 0) return -Errno.EINVAL;
        ulong handle = LookupElem((ulong)key);
        if (handle == 0) return -Errno.ENOENT;
        *(uint*)value = FromHandle(handle).Id;
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        // bpf_fd_htab_map_update_elem: the fd first, then the hash's own flag and capacity rules.
        int err = Resolve(value, out var map);
        if (err != 0) return err;
        ulong handle = map!.Handle;
        ulong before;
        lock (_write)
        {
            before = LookupElem((ulong)key);
            map.AddRef();
            err = (int)_slots.UpdateElem((ulong)key, (ulong)&handle, flags);
            if (err != 0)
            {
                map.Release();
                return err;
            }
        }
        // A stored map is registered until its last reference goes, so its handle still resolves here.
        if (before != 0) FromHandle(before).Release();
        return 0;
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key)
    {
        ulong before;
        lock (_write)
        {
            before = LookupElem((ulong)key);
            int err = (int)_slots.DeleteElem((ulong)key);
            if (err != 0) return err;
        }
        FromHandle(before).Release();
        return 0;
    }

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) =>
        _slots.GetNextKey(key == null ? [] : new ReadOnlySpan<byte>(key, KeySize), new Span<byte>(nextKey, KeySize));

    private protected override BpfMap? StoredById(uint id)
    {
        foreach (var key in _slots.Keys())
            fixed (byte* k = key)
                if (LookupElem((ulong)k) is not 0 and var handle && FromHandle(handle).Id == id) return FromHandle(handle);
        return null;
    }

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        foreach (var key in _slots.Keys().ToList())
            fixed (byte* k = key)
                DeleteCore(k);
        _slots.Dispose();
    }
}
