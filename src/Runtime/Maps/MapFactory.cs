using System.Numerics;
using BpfJit.Frontend;

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
public sealed record MapDefinition(string Name, MapType Type, int KeySize, int ValueSize, int MaxEntries, uint Flags = 0, int SpinLockOffset = -1,
    MapDefinition? InnerMap = null);

/// <summary>A map could not be created: the kernel's BPF_MAP_CREATE would have failed with <see cref="Errno"/>.</summary>
public sealed class MapCreateException : BpfException
{
    /// <summary>Creates the error for map <paramref name="name"/>.</summary>
    public MapCreateException(string name, MapType type, int errno, string reason)
        : base($"map {name} ({type}): {reason} (-{Maps.Errno.Name(errno)})")
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

    /// <summary>MAX_BPF_STACK: the largest hash key.</summary>
    public const int MaxKeySize = BpfAbi.StackSize;

    /// <summary>PCPU_MIN_UNIT_SIZE: the largest per-CPU value.</summary>
    public const int MaxPerCpuValueSize = 32 * 1024;

    /// <summary>The largest value this runtime allocates for one element (KMALLOC_MAX_SIZE on x86-64 is 4 MiB).</summary>
    public const int MaxValueSize = 4 * 1024 * 1024;

    /// <summary>LPM_DATA_SIZE_MAX: the largest LPM key data (after the 4-byte prefix length).</summary>
    public const int MaxLpmDataSize = 256;

    static readonly Dictionary<MapType, Func<MapDefinition, BpfMap>> s_custom = [];
    static readonly Lock s_lock = new();

    /// <summary>Registers the constructor of a map type built outside this folder (it validates its own attributes).</summary>
    public static void Register(MapType type, Func<MapDefinition, BpfMap> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        lock (s_lock) s_custom[type] = create;
    }

    /// <summary>Creates a map; throws <see cref="MapCreateException"/> where the kernel would fail.</summary>
    public static BpfMap Create(MapType type, int keySize, int valueSize, int maxEntries, uint flags = 0, string name = "", int spinLockOffset = -1) =>
        Create(new MapDefinition(name, type, keySize, valueSize, maxEntries, flags, spinLockOffset));

    /// <summary>Creates a map from its definition; throws <see cref="MapCreateException"/> where the kernel would fail.</summary>
    public static BpfMap Create(MapDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var d = definition;
        Func<MapDefinition, BpfMap>? custom;
        lock (s_lock) s_custom.TryGetValue(d.Type, out custom);
        if (custom != null) return custom(d);

        if (d.KeySize < 0 || d.ValueSize < 0 || d.MaxEntries < 0) Fail(d, Errno.EINVAL, "negative size");
        switch (d.Type)
        {
            case MapType.Array:
            case MapType.PerCpuArray:
                CheckFlags(d, MapFlags.NumaNode | MapFlags.AccessMask | MapFlags.Mmapable | MapFlags.InnerMap);
                if (d.KeySize != 4) Fail(d, Errno.EINVAL, $"key_size must be 4, not {d.KeySize}");
                CheckCommon(d);
                if (d.Type == MapType.PerCpuArray && d.ValueSize > MaxPerCpuValueSize) Fail(d, Errno.E2BIG, $"per-CPU value_size {d.ValueSize} exceeds {MaxPerCpuValueSize}");
                if (d.Type == MapType.PerCpuArray && (d.Flags & MapFlags.Mmapable) != 0) Fail(d, Errno.EINVAL, "per-CPU arrays cannot be mmapable");
                if (d.Type == MapType.PerCpuArray && (long)Native.Round8(d.ValueSize) * d.MaxEntries > PerCpuArrayMap.MaxRegion)
                    Fail(d, Errno.ENOMEM, "the map's slots for one CPU exceed 2 GiB");
                CheckSpinLock(d, allowed: d.Type == MapType.Array);
                return d.Type == MapType.Array ? new ArrayMap(d) : new PerCpuArrayMap(d);

            case MapType.Hash:
            case MapType.PerCpuHash:
            case MapType.LruHash:
            case MapType.LruPerCpuHash:
                {
                    bool lru = d.Type is MapType.LruHash or MapType.LruPerCpuHash;
                    bool perCpu = d.Type is MapType.PerCpuHash or MapType.LruPerCpuHash;
                    CheckFlags(d, MapFlags.NoPrealloc | MapFlags.NoCommonLru | MapFlags.NumaNode | MapFlags.AccessMask | MapFlags.ZeroSeed);
                    if (!lru && (d.Flags & MapFlags.NoCommonLru) != 0) Fail(d, Errno.EINVAL, "BPF_F_NO_COMMON_LRU needs an LRU map");
                    if (lru && (d.Flags & MapFlags.NoPrealloc) != 0) Fail(d, Errno.ENOTSUPP, "LRU maps must be preallocated");
                    CheckCommon(d);
                    if (d.KeySize > MaxKeySize) Fail(d, Errno.E2BIG, $"key_size {d.KeySize} exceeds {MaxKeySize}");
                    if (perCpu && d.ValueSize > MaxPerCpuValueSize) Fail(d, Errno.E2BIG, $"per-CPU value_size {d.ValueSize} exceeds {MaxPerCpuValueSize}");
                    CheckSpinLock(d, allowed: !perCpu);
                    return new HashMap(d);
                }

            case MapType.LpmTrie:
                if ((d.Flags & MapFlags.NoPrealloc) == 0) Fail(d, Errno.EINVAL, "LPM_TRIE needs BPF_F_NO_PREALLOC");
                CheckFlags(d, MapFlags.NoPrealloc | MapFlags.NumaNode | MapFlags.AccessMask);
                if (d.MaxEntries == 0) Fail(d, Errno.EINVAL, "max_entries must not be 0");
                if (d.KeySize < 5 || d.KeySize > 4 + MaxLpmDataSize)
                    Fail(d, Errno.EINVAL, $"key_size {d.KeySize} must be a 4-byte prefix length plus 1 to {MaxLpmDataSize} data bytes");
                if (d.ValueSize < 1 || d.ValueSize > MaxValueSize) Fail(d, Errno.EINVAL, $"value_size {d.ValueSize} out of range");
                CheckSpinLock(d, allowed: false);
                return new LpmTrieMap(d);

            case MapType.ProgArray:
            case MapType.PerfEventArray:
                CheckFlags(d, MapFlags.NumaNode | MapFlags.AccessMask | (d.Type == MapType.PerfEventArray ? MapFlags.PreserveElems : 0));
                if (d.KeySize != 4 || d.ValueSize != 4) Fail(d, Errno.EINVAL, "key_size and value_size must be 4");
                if (d.MaxEntries == 0) Fail(d, Errno.EINVAL, "max_entries must not be 0");
                CheckSpinLock(d, allowed: false);
                return d.Type == MapType.ProgArray ? new ProgArrayMap(d) : new PerfEventArrayMap(d);

            case MapType.RingBuf:
                CheckFlags(d, MapFlags.NumaNode);
                if (d.KeySize != 0 || d.ValueSize != 0) Fail(d, Errno.EINVAL, "key_size and value_size must be 0");
                if (d.MaxEntries <= 0 || !BitOperations.IsPow2(d.MaxEntries) || d.MaxEntries % PageSize != 0)
                    Fail(d, Errno.EINVAL, $"max_entries {d.MaxEntries} must be a power of 2 and a multiple of {PageSize}");
                CheckSpinLock(d, allowed: false);
                return new RingBufMap(d);

            case MapType.ArrayOfMaps:
            case MapType.HashOfMaps:
                return MapOfMaps.Create(d);

            case MapType.Unspec:
                Fail(d, Errno.EINVAL, "map type UNSPEC");
                break;
        }
        Fail(d, Errno.EINVAL, $"map type {d.Type} is not supported by this runtime");
        return null!;
    }

    internal static void CheckCommon(MapDefinition d)
    {
        if (d.KeySize == 0 || d.ValueSize == 0 || d.MaxEntries == 0)
            Fail(d, Errno.EINVAL, $"key_size {d.KeySize}, value_size {d.ValueSize} and max_entries {d.MaxEntries} must be non-zero");
        if (d.ValueSize > MaxValueSize) Fail(d, Errno.E2BIG, $"value_size {d.ValueSize} exceeds {MaxValueSize}");
        if ((long)Native.Round8(d.ValueSize) * d.MaxEntries > int.MaxValue * 4L) Fail(d, Errno.ENOMEM, "the map is too large");
    }

    internal static void CheckFlags(MapDefinition d, uint allowed)
    {
        if ((d.Flags & ~allowed) != 0) Fail(d, Errno.EINVAL, $"flags 0x{d.Flags:x} not valid for this type");
        if ((d.Flags & MapFlags.ReadOnly) != 0 && (d.Flags & MapFlags.WriteOnly) != 0) Fail(d, Errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together");
        if ((d.Flags & MapFlags.ReadOnlyProg) != 0 && (d.Flags & MapFlags.WriteOnlyProg) != 0) Fail(d, Errno.EINVAL, "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together");
    }

    static void CheckSpinLock(MapDefinition d, bool allowed)
    {
        if (d.SpinLockOffset < 0) return;
        if (!allowed) Fail(d, Errno.EINVAL, "this map type cannot hold a bpf_spin_lock");
        if (d.SpinLockOffset % 4 != 0 || d.SpinLockOffset + BpfSpinLock.Size > d.ValueSize)
            Fail(d, Errno.EINVAL, $"bpf_spin_lock at offset {d.SpinLockOffset} does not fit the value");
    }

    internal static void Fail(MapDefinition d, int errno, string reason) => throw new MapCreateException(d.Name, d.Type, errno, reason);
}
