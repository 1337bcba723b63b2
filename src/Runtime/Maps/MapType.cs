namespace BpfJit.Runtime.Maps;

/// <summary>The kernel's map types (enum bpf_map_type in include/uapi/linux/bpf.h), with the kernel's numbering.</summary>
public enum MapType : uint
{
    /// <summary>BPF_MAP_TYPE_UNSPEC.</summary>
    Unspec = 0,
    /// <summary>BPF_MAP_TYPE_HASH.</summary>
    Hash = 1,
    /// <summary>BPF_MAP_TYPE_ARRAY.</summary>
    Array = 2,
    /// <summary>BPF_MAP_TYPE_PROG_ARRAY: programs for bpf_tail_call.</summary>
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
    /// <summary>BPF_MAP_TYPE_CGROUP_STORAGE (deprecated name BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED).</summary>
    CgroupStorageDeprecated = 19,
    /// <summary>BPF_MAP_TYPE_REUSEPORT_SOCKARRAY.</summary>
    ReuseportSockArray = 20,
    /// <summary>BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE (deprecated).</summary>
    PerCpuCgroupStorageDeprecated = 21,
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

/// <summary>Map creation flags (the BPF_F_* values of bpf_attr.map_flags).</summary>
public static class MapFlags
{
    /// <summary>BPF_F_NO_PREALLOC: allocate elements on demand (required by LPM_TRIE).</summary>
    public const uint NoPrealloc = 1u << 0;
    /// <summary>BPF_F_NO_COMMON_LRU: per-CPU LRU lists (LRU hash maps only).</summary>
    public const uint NoCommonLru = 1u << 1;
    /// <summary>BPF_F_NUMA_NODE: numa_node is valid (accepted and ignored).</summary>
    public const uint NumaNode = 1u << 2;
    /// <summary>BPF_F_RDONLY: read-only for userspace.</summary>
    public const uint ReadOnly = 1u << 3;
    /// <summary>BPF_F_WRONLY: write-only for userspace.</summary>
    public const uint WriteOnly = 1u << 4;
    /// <summary>BPF_F_STACK_BUILD_ID.</summary>
    public const uint StackBuildId = 1u << 5;
    /// <summary>BPF_F_ZERO_SEED: hash maps use a zero hash seed.</summary>
    public const uint ZeroSeed = 1u << 6;
    /// <summary>BPF_F_RDONLY_PROG: read-only for programs.</summary>
    public const uint ReadOnlyProg = 1u << 7;
    /// <summary>BPF_F_WRONLY_PROG: write-only for programs.</summary>
    public const uint WriteOnlyProg = 1u << 8;
    /// <summary>BPF_F_CLONE.</summary>
    public const uint Clone = 1u << 9;
    /// <summary>BPF_F_MMAPABLE: the ARRAY value area may be mapped by userspace.</summary>
    public const uint Mmapable = 1u << 10;
    /// <summary>BPF_F_PRESERVE_ELEMS (perf event arrays).</summary>
    public const uint PreserveElems = 1u << 11;
    /// <summary>BPF_F_INNER_MAP.</summary>
    public const uint InnerMap = 1u << 12;

    /// <summary>The access flags every map type accepts (BPF_F_ACCESS_MASK).</summary>
    public const uint AccessMask = ReadOnly | WriteOnly | ReadOnlyProg | WriteOnlyProg;
}

/// <summary>Flags of element updates (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK).</summary>
public static class UpdateFlags
{
    /// <summary>BPF_ANY: create or update.</summary>
    public const ulong Any = 0;
    /// <summary>BPF_NOEXIST: create only; -EEXIST when the key exists.</summary>
    public const ulong NoExist = 1;
    /// <summary>BPF_EXIST: update only; -ENOENT when the key is absent.</summary>
    public const ulong Exist = 2;
    /// <summary>BPF_F_LOCK: copy the value under the value's bpf_spin_lock.</summary>
    public const ulong Lock = 4;
}
