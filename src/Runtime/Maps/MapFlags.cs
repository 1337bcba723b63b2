namespace BpfJit.Runtime.Maps;

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
