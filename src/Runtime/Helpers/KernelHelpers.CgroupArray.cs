using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static partial class KernelHelpers
{
    /// <summary>bpf_current_task_under_cgroup.</summary>
    public const int CurrentTaskUnderCgroupId = 37;

    /// <summary>
    /// bpf_current_task_under_cgroup(map, index): 1 when the calling host thread's cgroup v2 cgroup is the CGROUP_ARRAY slot's
    /// cgroup or a descendant of it (its ancestry, read from <c>/proc/thread-self/cgroup</c> and the cgroup2 mount, holds the
    /// slot's id), else 0; -E2BIG for an index past max_entries, -EAGAIN for an empty slot, as the kernel's. Where the
    /// thread's cgroup cannot be known (no cgroup2 mount reaches it) the answer is 0 for every cgroup but the root (id 1),
    /// which every thread is under.
    /// </summary>
    public static ulong CurrentTaskUnderCgroup(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (BpfMap.FromHandle(r1) is not CgroupArrayMap cgroups) return Err(Errno.EINVAL);
        var chain = CurrentCgroup.Chain();
        // The root cgroup (id 1) holds every task, whether or not its ancestry could be read.
        return (ulong)cgroups.UnderCgroup((uint)r2, chain.Length == 0 ? [RootCgroupId] : chain);
    }

    /// <summary>The id of the cgroup v2 root cgroup.</summary>
    const ulong RootCgroupId = 1;
}
