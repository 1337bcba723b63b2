using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Runtime.ProgramTypes;

/// <summary>
/// What every program type shares: the kernel's bpf_base_func_proto for a loader with CAP_BPF and CAP_PERFMON, the
/// GPL-only marks of those prototypes, the license rule, and check_map_func_compatibility (which map types each
/// helper takes). A type's declaration adds its own helpers to <see cref="Helpers"/>.
/// </summary>
public static class BaseFuncProto
{
    /// <summary>The helpers of bpf_base_func_proto as root, by name without the <c>bpf_</c> prefix.</summary>
    public static IReadOnlyList<string> Helpers { get; } =
    [
        "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem", "map_peek_elem",
        "map_lookup_percpu_elem", "get_prandom_u32", "get_smp_processor_id", "get_numa_node_id", "tail_call",
        "ktime_get_ns", "ktime_get_boot_ns", "ktime_get_tai_ns", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
        "ringbuf_discard", "ringbuf_query", "strncmp", "strtol", "strtoul", "get_current_pid_tgid", "get_ns_current_pid_tgid",
        "get_current_uid_gid",
        "spin_lock", "spin_unlock", "jiffies64", "per_cpu_ptr", "this_cpu_ptr", "timer_init", "timer_set_callback", "timer_start",
        "timer_cancel", "kptr_xchg", "for_each_map_elem", "loop", "user_ringbuf_drain", "ringbuf_reserve_dynptr",
        "ringbuf_submit_dynptr", "ringbuf_discard_dynptr", "dynptr_from_mem", "dynptr_read", "dynptr_write", "dynptr_data",
        "cgrp_storage_get", "cgrp_storage_delete", "get_current_cgroup_id", "get_current_ancestor_cgroup_id",
        "current_task_under_cgroup", "get_cgroup_classid", "task_storage_get", "task_storage_delete",
        "trace_printk", "get_current_task", "get_current_task_btf", "get_current_comm", "probe_read_user", "probe_read_kernel",
        "probe_read_user_str", "probe_read_kernel_str", "copy_from_user", "copy_from_user_task", "snprintf_btf", "snprintf",
        "task_pt_regs", "trace_vprintk", "perf_event_read", "perf_event_read_value", "send_signal", "send_signal_thread",
        "get_task_stack", "get_branch_snapshot", "find_vma",
    ];

    // The prototypes with gpl_only set among the helpers any type may be offered (bpf_trace_printk, the probe reads,
    // the current-task and timer helpers, perf_event_output...), as the live 6.18 kernel refuses them to a non-GPL program.
    static readonly HashSet<int> s_gplOnly = Ids(
    [
        "perf_event_output", "timer_init", "timer_set_callback", "timer_start", "timer_cancel", "trace_printk",
        "get_current_task", "get_current_task_btf", "probe_read_user", "probe_read_kernel", "probe_read_user_str",
        "probe_read_kernel_str", "copy_from_user_task", "snprintf", "task_pt_regs", "trace_vprintk", "perf_event_read",
        "perf_event_read_value", "get_branch_snapshot",
    ]);

    /// <summary>Helper ids by name without the <c>bpf_</c> prefix; unknown names are left out.</summary>
    public static HashSet<int> Ids(IEnumerable<string> names)
    {
        // A loop, not Select/Where: LINQ's iterators over (string, int) are framework generics no ReadyToRun image
        // holds, compiled by RyuJIT at every process's first program (docs/perf.md, "Cold start").
        var ids = new HashSet<int>();
        foreach (string name in names)
        {
            int id = HelperNames.Id(name);
            if (id > 0) ids.Add(id);
        }
        return ids;
    }

    /// <summary>True when helper <paramref name="id"/>'s shared prototype is GPL-only (its <c>gpl_only</c>).</summary>
    public static bool IsGplOnly(int id) => s_gplOnly.Contains(id);

    /// <summary>
    /// The kernel's <c>license_is_gpl_compatible</c>: true for exactly "GPL", "GPL v2", "GPL and additional rights",
    /// "Dual BSD/GPL", "Dual MIT/GPL" and "Dual MPL/GPL" (case and spacing matter, as in the kernel's strcmp).
    /// </summary>
    public static bool IsGplCompatible(string license) =>
        license is "GPL" or "GPL v2" or "GPL and additional rights" or "Dual BSD/GPL" or "Dual MIT/GPL" or "Dual MPL/GPL";

    /// <summary>The helper's kernel name and id as messages print it: <c>bpf_sk_assign#124</c>.</summary>
    public static string Display(int id) => $"{HelperNames.Name(id) ?? "unknown"}#{id}";

    /// <summary>
    /// True when a map of type <paramref name="mapType"/> may be passed to helper <paramref name="id"/>: the kernel's
    /// two-way <c>check_map_func_compatibility</c>, first what each special map type allows (a STACK_TRACE,
    /// CGROUP_ARRAY or CPUMAP cannot even be looked up), then which map types each special helper takes.
    /// <paramref name="mayUpdateSockMap"/>: the program type may update and delete SOCKMAP/SOCKHASH entries.
    /// </summary>
    public static bool MapCompatible(MapType mapType, int id, bool mayUpdateSockMap = true)
    {
        string name = HelperNames.Name(id)?[4..] ?? "";
        bool sockUpdate = mayUpdateSockMap && name is "map_update_elem" or "map_delete_elem";
        bool mapOk = mapType switch
        {
            MapType.ProgArray => name == "tail_call",
            MapType.PerfEventArray => name is "perf_event_read" or "perf_event_output" or "skb_output" or "perf_event_read_value" or "xdp_output",
            MapType.RingBuf => name is "ringbuf_output" or "ringbuf_reserve" or "ringbuf_query" or "ringbuf_reserve_dynptr"
                or "ringbuf_submit_dynptr" or "ringbuf_discard_dynptr",
            MapType.UserRingBuf => name == "user_ringbuf_drain",
            MapType.StackTrace => name == "get_stackid",
            MapType.CgroupArray => name is "skb_under_cgroup" or "current_task_under_cgroup",
            MapType.CgroupStorage or MapType.PerCpuCgroupStorage => name == "get_local_storage",
            MapType.DevMap or MapType.DevMapHash or MapType.XskMap => name is "redirect_map" or "map_lookup_elem",
            MapType.CpuMap => name == "redirect_map",
            MapType.ArrayOfMaps or MapType.HashOfMaps => name == "map_lookup_elem",
            MapType.SockMap => name is "sk_redirect_map" or "sock_map_update" or "msg_redirect_map" or "sk_select_reuseport"
                or "map_lookup_elem" || sockUpdate,
            MapType.SockHash => name is "sk_redirect_hash" or "sock_hash_update" or "msg_redirect_hash" or "sk_select_reuseport"
                or "map_lookup_elem" || sockUpdate,
            MapType.ReuseportSockArray => name == "sk_select_reuseport",
            MapType.Queue or MapType.Stack => name is "map_peek_elem" or "map_pop_elem" or "map_push_elem",
            MapType.SkStorage => name is "sk_storage_get" or "sk_storage_delete" or "kptr_xchg",
            MapType.InodeStorage => name is "inode_storage_get" or "inode_storage_delete",
            MapType.TaskStorage => name is "task_storage_get" or "task_storage_delete",
            MapType.CgrpStorage => name is "cgrp_storage_get" or "cgrp_storage_delete",
            MapType.BloomFilter => name is "map_peek_elem" or "map_push_elem",
            _ => true,
        };
        if (!mapOk) return false;
        return name switch
        {
            "tail_call" => mapType == MapType.ProgArray,
            "perf_event_read" or "perf_event_output" or "perf_event_read_value" or "skb_output" or "xdp_output" => mapType == MapType.PerfEventArray,
            "ringbuf_output" or "ringbuf_reserve" or "ringbuf_query" or "ringbuf_reserve_dynptr" or "ringbuf_submit_dynptr"
                or "ringbuf_discard_dynptr" => mapType == MapType.RingBuf,
            "user_ringbuf_drain" => mapType == MapType.UserRingBuf,
            "get_stackid" => mapType == MapType.StackTrace,
            "current_task_under_cgroup" or "skb_under_cgroup" => mapType == MapType.CgroupArray,
            "redirect_map" => mapType is MapType.DevMap or MapType.DevMapHash or MapType.CpuMap or MapType.XskMap,
            "sk_redirect_map" or "msg_redirect_map" or "sock_map_update" => mapType == MapType.SockMap,
            "sk_redirect_hash" or "msg_redirect_hash" or "sock_hash_update" => mapType == MapType.SockHash,
            "get_local_storage" => mapType is MapType.CgroupStorage or MapType.PerCpuCgroupStorage,
            "sk_select_reuseport" => mapType is MapType.ReuseportSockArray or MapType.SockMap or MapType.SockHash,
            "map_pop_elem" => mapType is MapType.Queue or MapType.Stack,
            "map_push_elem" or "map_peek_elem" => mapType is MapType.Queue or MapType.Stack or MapType.BloomFilter,
            "map_lookup_percpu_elem" => mapType is MapType.PerCpuArray or MapType.PerCpuHash or MapType.LruPerCpuHash,
            "sk_storage_get" or "sk_storage_delete" => mapType == MapType.SkStorage,
            "inode_storage_get" or "inode_storage_delete" => mapType == MapType.InodeStorage,
            "task_storage_get" or "task_storage_delete" => mapType == MapType.TaskStorage,
            "cgrp_storage_get" or "cgrp_storage_delete" => mapType == MapType.CgrpStorage,
            "for_each_map_elem" => mapType is MapType.Hash or MapType.LruHash or MapType.Array or MapType.PerCpuHash or MapType.PerCpuArray or MapType.LruPerCpuHash,
            _ => true,
        };
    }
}
