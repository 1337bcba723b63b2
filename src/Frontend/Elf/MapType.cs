namespace BpfJit.Frontend.Elf;

/// <summary>Kernel map types (enum bpf_map_type), with the kernel's numbering.</summary>
public enum MapType : uint
{
    /// <summary>BPF_MAP_TYPE_UNSPEC.</summary>
    Unspec = 0,
    /// <summary>BPF_MAP_TYPE_HASH.</summary>
    Hash = 1,
    /// <summary>BPF_MAP_TYPE_ARRAY.</summary>
    Array = 2,
    /// <summary>BPF_MAP_TYPE_PROG_ARRAY.</summary>
    ProgArray = 3,
    /// <summary>BPF_MAP_TYPE_PERF_EVENT_ARRAY.</summary>
    PerfEventArray = 4,
    /// <summary>BPF_MAP_TYPE_PERCPU_HASH.</summary>
    PerCpuHash = 5,
    /// <summary>BPF_MAP_TYPE_PERCPU_ARRAY.</summary>
    PerCpuArray = 6,
    /// <summary>BPF_MAP_TYPE_STACK_TRACE.</summary>
    StackTrace = 7,
    /// <summary>BPF_MAP_TYPE_CGROUP_ARRAY.</summary>
    CgroupArray = 8,
    /// <summary>BPF_MAP_TYPE_LRU_HASH.</summary>
    LruHash = 9,
    /// <summary>BPF_MAP_TYPE_LRU_PERCPU_HASH.</summary>
    LruPerCpuHash = 10,
    /// <summary>BPF_MAP_TYPE_LPM_TRIE.</summary>
    LpmTrie = 11,
    /// <summary>BPF_MAP_TYPE_ARRAY_OF_MAPS.</summary>
    ArrayOfMaps = 12,
    /// <summary>BPF_MAP_TYPE_HASH_OF_MAPS.</summary>
    HashOfMaps = 13,
    /// <summary>BPF_MAP_TYPE_DEVMAP.</summary>
    DevMap = 14,
    /// <summary>BPF_MAP_TYPE_SOCKMAP.</summary>
    SockMap = 15,
    /// <summary>BPF_MAP_TYPE_CPUMAP.</summary>
    CpuMap = 16,
    /// <summary>BPF_MAP_TYPE_XSKMAP.</summary>
    XskMap = 17,
    /// <summary>BPF_MAP_TYPE_SOCKHASH.</summary>
    SockHash = 18,
    /// <summary>BPF_MAP_TYPE_CGROUP_STORAGE.</summary>
    CgroupStorage = 19,
    /// <summary>BPF_MAP_TYPE_REUSEPORT_SOCKARRAY.</summary>
    ReuseportSockArray = 20,
    /// <summary>BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE.</summary>
    PerCpuCgroupStorage = 21,
    /// <summary>BPF_MAP_TYPE_QUEUE.</summary>
    Queue = 22,
    /// <summary>BPF_MAP_TYPE_STACK.</summary>
    Stack = 23,
    /// <summary>BPF_MAP_TYPE_SK_STORAGE.</summary>
    SkStorage = 24,
    /// <summary>BPF_MAP_TYPE_DEVMAP_HASH.</summary>
    DevMapHash = 25,
    /// <summary>BPF_MAP_TYPE_STRUCT_OPS.</summary>
    StructOps = 26,
    /// <summary>BPF_MAP_TYPE_RINGBUF.</summary>
    RingBuf = 27,
    /// <summary>BPF_MAP_TYPE_INODE_STORAGE.</summary>
    InodeStorage = 28,
    /// <summary>BPF_MAP_TYPE_TASK_STORAGE.</summary>
    TaskStorage = 29,
    /// <summary>BPF_MAP_TYPE_BLOOM_FILTER.</summary>
    BloomFilter = 30,
    /// <summary>BPF_MAP_TYPE_USER_RINGBUF.</summary>
    UserRingBuf = 31,
    /// <summary>BPF_MAP_TYPE_CGRP_STORAGE.</summary>
    CgrpStorage = 32,
    /// <summary>BPF_MAP_TYPE_ARENA.</summary>
    Arena = 33,
    /// <summary>BPF_MAP_TYPE_INSN_ARRAY.</summary>
    InsnArray = 34,
}

/// <summary>Facts about <see cref="MapType"/> values.</summary>
public static class MapTypes
{
    /// <summary>The highest map type: the kernel's enum bpf_map_type numbers its members without gaps up to it.</summary>
    public const MapType Last = MapType.InsnArray;

    /// <summary>
    /// True when <paramref name="type"/> is one of the kernel's map types (UNSPEC too), as map_create's bound on
    /// the type. What <c>Enum.IsDefined</c> says, without the reflection and RyuJIT compile it costs at its first
    /// call (docs/perf.md, "Cold start").
    /// </summary>
    public static bool IsDefined(MapType type) => type <= Last;
}

/// <summary>How a map is pinned (libbpf's LIBBPF_PIN_*).</summary>
public enum PinType : uint
{
    /// <summary>Not pinned.</summary>
    None = 0,
    /// <summary>Pinned by name under the pin path.</summary>
    ByName = 1,
}

/// <summary>Where a map definition came from.</summary>
public enum MapSource
{
    /// <summary>A BTF-defined map in the <c>.maps</c> section.</summary>
    BtfMaps,
    /// <summary>A <c>struct bpf_map_def</c> in the legacy <c>maps</c> section.</summary>
    LegacyMaps,
    /// <summary>Global data: a <c>.rodata</c>, <c>.data</c> or <c>.bss</c> section (or one of their <c>.*</c> variants).</summary>
    GlobalData,
}
