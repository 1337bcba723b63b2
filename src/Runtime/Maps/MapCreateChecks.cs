using System.Numerics;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The attributes of BPF_MAP_CREATE as the kernel takes them: unsigned 32-bit sizes, so 2^31 and
/// 2^32 - 1 are ordinary inputs (an object file or a caller may declare them), not overflows.
/// </summary>
/// <param name="Type">The map type.</param>
/// <param name="KeySize">key_size.</param>
/// <param name="ValueSize">value_size.</param>
/// <param name="MaxEntries">max_entries (the byte size of a RINGBUF).</param>
/// <param name="Flags">map_flags (<see cref="MapFlags"/>).</param>
/// <param name="NumaNode">numa_node, read only with BPF_F_NUMA_NODE (0xffffffff is NUMA_NO_NODE).</param>
/// <param name="Btf">btf_key_type_id and btf_value_type_id are given (<see cref="MapDefinition.Btf"/>).</param>
/// <param name="BtfKey">The BTF key type, when known (<see cref="MapDefinition.BtfKey"/>): map_check_btf looks at it.</param>
public readonly record struct MapAttributes(MapType Type, uint KeySize, uint ValueSize, uint MaxEntries, uint Flags = 0, uint NumaNode = 0, bool Btf = false,
    MapKeyBtf? BtfKey = null)
{
    /// <summary>The attributes of a definition; a negative size stands for the u32 with the same bits, as the syscall reads it.</summary>
    public static MapAttributes Of(MapDefinition d)
    {
        ArgumentNullException.ThrowIfNull(d);
        return new(d.Type, (uint)d.KeySize, (uint)d.ValueSize, (uint)d.MaxEntries, d.Flags, d.NumaNode, d.Btf, d.BtfKey);
    }
}

/// <summary>
/// The kernel's per-type creation checks (Linux 6.18: <c>map_create</c> in kernel/bpf/syscall.c, then each type's
/// <c>map_alloc_check</c> and the checks its <c>map_alloc</c> makes before allocating), in the kernel's order, so
/// that an attribute set with several faults gets the errno the kernel returns first. Nothing here allocates.
/// </summary>
internal static class MapCreateChecks
{
    /// <summary>KMALLOC_MAX_SIZE on x86-64 (SLUB, MAX_PAGE_ORDER 10): the largest single kernel allocation.</summary>
    public const long KmallocMaxSize = 4L << 20;

    /// <summary>sizeof(struct htab_elem): the header of a hash element, counted against KMALLOC_MAX_SIZE.</summary>
    public const long HtabElemHeader = 48;

    /// <summary>LPM_VAL_SIZE_MAX: KMALLOC_MAX_SIZE less the largest key data and the trie node header (measured on 6.18: 4194024).</summary>
    public const uint LpmMaxValueSize = 4194024;

    /// <summary>sizeof(struct bucket) of a hash table and of a SOCKHASH: the bucket array must stay under 4 GiB.</summary>
    const uint BucketSize = 16;

    const uint NumaNoNode = uint.MaxValue;

    /// <summary>The numa_node the kernel uses: the attribute with BPF_F_NUMA_NODE, else NUMA_NO_NODE.</summary>
    static uint Numa(in MapAttributes a) => (a.Flags & MapFlags.NumaNode) != 0 ? a.NumaNode : NumaNoNode;

    /// <summary>bpf_map_flags_access_ok: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG exclude each other.</summary>
    static bool AccessOk(uint flags) => (flags & (MapFlags.ReadOnlyProg | MapFlags.WriteOnlyProg)) != (MapFlags.ReadOnlyProg | MapFlags.WriteOnlyProg);

    /// <summary>
    /// Throws <see cref="MapCreateException"/> where BPF_MAP_CREATE fails before allocating. The map-in-map template
    /// (inner_map_fd) is checked by <see cref="MapOfMaps"/>; the memory by <see cref="MapMemory"/>.
    /// </summary>
    public static void Check(string name, in MapAttributes a)
    {
        // map_create: the file mode from the flags, then the node, then the type's own checks.
        if ((a.Flags & MapFlags.ReadOnly) != 0 && (a.Flags & MapFlags.WriteOnly) != 0)
            Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_RDONLY and BPF_F_WRONLY together");
        // BpfJit's host is one NUMA node (node 0), as a machine with nr_node_ids 1.
        uint numa = Numa(a);
        if (numa != NumaNoNode && numa != 0) Fail(name, a, Errno.EINVAL, $"numa_node {a.NumaNode} is not an online node (the host is node 0)");
        switch (a.Type)
        {
            case MapType.Array:
            case MapType.PerCpuArray:
                Array(name, a);
                break;
            case MapType.ProgArray:
            case MapType.PerfEventArray:
            case MapType.CgroupArray:
            case MapType.ArrayOfMaps:
                FdArray(name, a);
                break;
            case MapType.Hash:
            case MapType.PerCpuHash:
            case MapType.LruHash:
            case MapType.LruPerCpuHash:
                Hash(name, a);
                break;
            case MapType.HashOfMaps:
                if (a.ValueSize != 4) Fail(name, a, Errno.EINVAL, $"value_size {a.ValueSize}: must be 4 (a map fd)");
                Hash(name, a);
                break;
            case MapType.LpmTrie:
                Lpm(name, a);
                break;
            case MapType.RingBuf:
            case MapType.UserRingBuf:
                RingBuf(name, a);
                break;
            case MapType.SockMap:
            case MapType.SockHash:
                Sock(name, a);
                break;
            case MapType.Queue:
            case MapType.Stack:
                QueueStack(name, a);
                break;
            case MapType.ReuseportSockArray:
                // reuseport_array_alloc_check: an fd or a cookie, then array_map_alloc_check.
                if (a.ValueSize is not (4 or 8)) Fail(name, a, Errno.EINVAL, $"value_size {a.ValueSize}: must be 4 or 8");
                Array(name, a);
                break;
            case MapType.TaskStorage:
            case MapType.CgrpStorage:
                LocalStorage(name, a);
                break;
            case MapType.Unspec:
                Fail(name, a, Errno.EINVAL, "map_type UNSPEC (0)");
                break;
            default:
                if (!BpfJit.Frontend.Elf.MapTypes.IsDefined(a.Type)) Fail(name, a, Errno.EINVAL, $"map_type {(uint)a.Type} is unknown");
                Fail(name, a, Errno.EINVAL, $"map_type {a.Type} is not supported by this runtime");
                break;
        }
    }

    // array_map_alloc_check, then array_map_alloc's own limit.
    static void Array(string name, in MapAttributes a)
    {
        bool percpu = a.Type == MapType.PerCpuArray;
        const uint mask = MapFlags.NumaNode | MapFlags.Mmapable | MapFlags.AccessMask | MapFlags.PreserveElems | MapFlags.InnerMap;
        if (a.MaxEntries == 0) Fail(name, a, Errno.EINVAL, "max_entries 0");
        if (a.KeySize != 4) Fail(name, a, Errno.EINVAL, $"key_size {a.KeySize}: must be 4");
        if (a.ValueSize == 0) Fail(name, a, Errno.EINVAL, "value_size 0");
        if ((a.Flags & ~mask) != 0) Fail(name, a, Errno.EINVAL, $"map_flags 0x{a.Flags:x}: 0x{a.Flags & ~mask:x} not valid for this type");
        if (!AccessOk(a.Flags)) Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together");
        if (percpu && Numa(a) != NumaNoNode) Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_NUMA_NODE on a per-CPU map");
        if (a.Type != MapType.Array && (a.Flags & (MapFlags.Mmapable | MapFlags.InnerMap)) != 0)
            Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_MMAPABLE and BPF_F_INNER_MAP are for ARRAY only");
        if (a.Type != MapType.PerfEventArray && (a.Flags & MapFlags.PreserveElems) != 0)
            Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_PRESERVE_ELEMS is for PERF_EVENT_ARRAY only");
        if (a.ValueSize > int.MaxValue) Fail(name, a, Errno.E2BIG, $"value_size {a.ValueSize} exceeds {int.MaxValue}");
        if (percpu && Round8(a.ValueSize) > MapFactory.MaxPerCpuValueSize)
            Fail(name, a, Errno.E2BIG, $"value_size {a.ValueSize}: a per-CPU value is at most {MapFactory.MaxPerCpuValueSize} bytes");
    }

    // fd_array_map_alloc_check (PROG_ARRAY, PERF_EVENT_ARRAY, CGROUP_ARRAY, ARRAY_OF_MAPS after its template).
    static void FdArray(string name, in MapAttributes a)
    {
        if (a.ValueSize != 4) Fail(name, a, Errno.EINVAL, $"value_size {a.ValueSize}: must be 4 (an fd)");
        if ((a.Flags & (MapFlags.ReadOnlyProg | MapFlags.WriteOnlyProg)) != 0)
            Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG are not valid for an fd array");
        Array(name, a);
    }

    // htab_map_alloc_check, then the limits htab_map_alloc checks before allocating.
    static void Hash(string name, in MapAttributes a)
    {
        bool percpu = a.Type is MapType.PerCpuHash or MapType.LruPerCpuHash;
        bool lru = a.Type is MapType.LruHash or MapType.LruPerCpuHash;
        bool prealloc = (a.Flags & MapFlags.NoPrealloc) == 0;
        bool percpuLru = (a.Flags & MapFlags.NoCommonLru) != 0;
        const uint mask = MapFlags.NoPrealloc | MapFlags.NoCommonLru | MapFlags.NumaNode | MapFlags.AccessMask | MapFlags.ZeroSeed;
        if ((a.Flags & ~mask) != 0) Fail(name, a, Errno.EINVAL, $"map_flags 0x{a.Flags:x}: 0x{a.Flags & ~mask:x} not valid for this type");
        if (!AccessOk(a.Flags)) Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together");
        if (!lru && percpuLru) Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_NO_COMMON_LRU needs an LRU map");
        if (lru && !prealloc) Fail(name, a, Errno.ENOTSUPP, "map_flags: an LRU map cannot have BPF_F_NO_PREALLOC");
        if (Numa(a) != NumaNoNode && (percpu || percpuLru)) Fail(name, a, Errno.EINVAL, "map_flags: BPF_F_NUMA_NODE on a per-CPU map");
        if (a.MaxEntries == 0 || a.KeySize == 0 || a.ValueSize == 0)
            Fail(name, a, Errno.EINVAL, $"{(a.MaxEntries == 0 ? "max_entries" : a.KeySize == 0 ? "key_size" : "value_size")} 0");
        if ((long)a.KeySize + a.ValueSize >= KmallocMaxSize - HtabElemHeader)
            Fail(name, a, Errno.E2BIG, $"key_size {a.KeySize} + value_size {a.ValueSize}: an element is at most {KmallocMaxSize} bytes with its {HtabElemHeader}-byte header");
        if (percpu && Round8(a.ValueSize) > MapFactory.MaxPerCpuValueSize)
            Fail(name, a, Errno.E2BIG, $"value_size {a.ValueSize}: a per-CPU value is at most {MapFactory.MaxPerCpuValueSize} bytes");
        if (a.MaxEntries > 1u << 31 || RoundUpPow2(a.MaxEntries) > uint.MaxValue / BucketSize)
            Fail(name, a, Errno.E2BIG, $"max_entries {a.MaxEntries}: the bucket array (max_entries rounded up to a power of 2, 16 bytes each) exceeds 4 GiB");
    }

    // trie_alloc: one check, EINVAL for any fault.
    static void Lpm(string name, in MapAttributes a)
    {
        const uint mask = MapFlags.NoPrealloc | MapFlags.NumaNode | MapFlags.AccessMask;
        string? fault =
            a.MaxEntries == 0 ? "max_entries 0"
            : (a.Flags & MapFlags.NoPrealloc) == 0 ? "map_flags: LPM_TRIE needs BPF_F_NO_PREALLOC"
            : (a.Flags & ~mask) != 0 ? $"map_flags 0x{a.Flags:x}: 0x{a.Flags & ~mask:x} not valid for this type"
            : !AccessOk(a.Flags) ? "map_flags: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together"
            : a.KeySize < 5 || a.KeySize > 4 + MapFactory.MaxLpmDataSize ? $"key_size {a.KeySize}: must be a 4-byte prefix length and 1 to {MapFactory.MaxLpmDataSize} data bytes"
            : a.ValueSize < 1 || a.ValueSize > LpmMaxValueSize ? $"value_size {a.ValueSize}: must be 1 to {LpmMaxValueSize}"
            : null;
        if (fault != null) Fail(name, a, Errno.EINVAL, fault);
    }

    // ringbuf_map_alloc.
    static void RingBuf(string name, in MapAttributes a)
    {
        if ((a.Flags & ~MapFlags.NumaNode) != 0) Fail(name, a, Errno.EINVAL, $"map_flags 0x{a.Flags:x}: only BPF_F_NUMA_NODE is valid for {a.Type}");
        if (a.KeySize != 0 || a.ValueSize != 0) Fail(name, a, Errno.EINVAL, $"key_size {a.KeySize} and value_size {a.ValueSize}: must be 0");
        if (!BitOperations.IsPow2(a.MaxEntries) || a.MaxEntries % MapFactory.PageSize != 0)
            Fail(name, a, Errno.EINVAL, $"max_entries {a.MaxEntries}: must be a power of 2 and a multiple of {MapFactory.PageSize}");
    }

    // queue_stack_map_alloc_check: one EINVAL for any fault of the attributes, then E2BIG for a value userspace could not copy.
    static void QueueStack(string name, in MapAttributes a)
    {
        const uint mask = MapFlags.NumaNode | MapFlags.AccessMask;
        string? fault =
            a.MaxEntries == 0 ? "max_entries 0"
            : a.KeySize != 0 ? $"key_size {a.KeySize}: must be 0 (a {a.Type} has no keys)"
            : a.ValueSize == 0 ? "value_size 0"
            : (a.Flags & ~mask) != 0 ? $"map_flags 0x{a.Flags:x}: 0x{a.Flags & ~mask:x} not valid for this type"
            : !AccessOk(a.Flags) ? "map_flags: BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together"
            : null;
        if (fault != null) Fail(name, a, Errno.EINVAL, fault);
        if (a.ValueSize > KmallocMaxSize) Fail(name, a, Errno.E2BIG, $"value_size {a.ValueSize} exceeds {KmallocMaxSize}");
    }

    // bpf_local_storage_map_alloc_check: one EINVAL for any fault (BTF key and value types included: the kernel wants them
    // to dump the storage), then E2BIG for a value past BPF_LOCAL_STORAGE_MAX_VALUE_SIZE.
    static void LocalStorage(string name, in MapAttributes a)
    {
        const uint mask = MapFlags.NoPrealloc | MapFlags.Clone;
        string? fault =
            (a.Flags & ~mask) != 0 ? $"map_flags 0x{a.Flags:x}: 0x{a.Flags & ~mask:x} not valid for this type"
            : (a.Flags & MapFlags.NoPrealloc) == 0 ? $"map_flags: {a.Type} needs BPF_F_NO_PREALLOC"
            : a.MaxEntries != 0 ? $"max_entries {a.MaxEntries}: must be 0"
            : a.KeySize != 4 ? $"key_size {a.KeySize}: must be 4"
            : a.ValueSize == 0 ? "value_size 0"
            : !a.Btf ? "btf_key_type_id and btf_value_type_id are required"
            : null;
        if (fault != null) Fail(name, a, Errno.EINVAL, fault);
        if (a.ValueSize > LocalStorageMap.MaxValueSize) Fail(name, a, Errno.E2BIG, $"value_size {a.ValueSize} exceeds {LocalStorageMap.MaxValueSize}");
        // After allocating, map_check_btf: bpf_local_storage_map_check_btf takes only a 32-bit int key (a 4-byte struct,
        // enum or array is refused; libbpf's retry without BTF then fails the check above).
        if (a.BtfKey is { IsInt32: false } key)
            Fail(name, a, Errno.EINVAL, $"BTF key type {key}: must be a 32-bit int (bpf_local_storage_map_check_btf)");
    }

    // sock_map_alloc and sock_hash_alloc.
    static void Sock(string name, in MapAttributes a)
    {
        bool hash = a.Type == MapType.SockHash;
        const uint mask = MapFlags.NumaNode | MapFlags.ReadOnly | MapFlags.WriteOnly;
        if (a.MaxEntries == 0) Fail(name, a, Errno.EINVAL, "max_entries 0");
        if (hash ? a.KeySize == 0 : a.KeySize != 4) Fail(name, a, Errno.EINVAL, $"key_size {a.KeySize}: must be {(hash ? "non-zero" : "4")}");
        if (a.ValueSize is not (4 or 8)) Fail(name, a, Errno.EINVAL, $"value_size {a.ValueSize}: must be 4 or 8");
        if ((a.Flags & ~mask) != 0) Fail(name, a, Errno.EINVAL, $"map_flags 0x{a.Flags:x}: 0x{a.Flags & ~mask:x} not valid for this type");
        if (!hash) return;
        if (a.KeySize > MapFactory.MaxKeySize) Fail(name, a, Errno.E2BIG, $"key_size {a.KeySize} exceeds {MapFactory.MaxKeySize}");
        if (RoundUpPow2(a.MaxEntries) > uint.MaxValue / BucketSize)
            Fail(name, a, Errno.EINVAL, $"max_entries {a.MaxEntries}: the bucket array (max_entries rounded up to a power of 2, 16 bytes each) exceeds 4 GiB");
    }

    /// <summary>roundup_pow_of_two on a 64-bit unsigned long: 2^32 for anything above 2^31.</summary>
    static ulong RoundUpPow2(uint n) => n <= 1 ? 1 : BitOperations.RoundUpToPowerOf2((ulong)n);

    static ulong Round8(uint n) => ((ulong)n + 7) & ~7UL;

    internal static void Fail(string name, in MapAttributes a, int errno, string reason) => throw new MapCreateException(name, a.Type, errno, reason);
}
