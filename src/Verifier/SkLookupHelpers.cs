using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Verifier;

/// <summary>
/// The helpers the kernel lets an SK_LOOKUP program call as root (sk_lookup_func_proto with CAP_BPF
/// and CAP_PERFMON; sk-lookup.md section 3.1), and the map types each helper accepts
/// (check_map_func_compatibility).
/// </summary>
public static class SkLookupHelpers
{
    static readonly string[] s_allowed =
    [
        "perf_event_output", "sk_assign", "sk_release", "ktime_get_coarse_ns",
        "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock",
        "skc_to_unix_sock", "skc_to_mptcp_sock",
        "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem", "map_peek_elem",
        "map_lookup_percpu_elem", "get_prandom_u32", "get_smp_processor_id", "get_numa_node_id", "tail_call",
        "ktime_get_ns", "ktime_get_boot_ns", "ktime_get_tai_ns", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
        "ringbuf_discard", "ringbuf_query", "strncmp", "strtol", "strtoul", "get_current_pid_tgid", "get_ns_current_pid_tgid",
        "get_current_uid_gid",
        "spin_lock", "spin_unlock", "jiffies64", "per_cpu_ptr", "this_cpu_ptr", "timer_init", "timer_set_callback", "timer_start",
        "timer_cancel", "kptr_xchg", "for_each_map_elem", "loop", "user_ringbuf_drain", "ringbuf_reserve_dynptr",
        "ringbuf_submit_dynptr", "ringbuf_discard_dynptr", "dynptr_from_mem", "dynptr_read", "dynptr_write", "dynptr_data",
        "cgroup_storage_get", "cgroup_storage_delete", "get_current_cgroup_id", "get_current_ancestor_cgroup_id",
        "current_task_under_cgroup", "get_cgroup_classid", "task_storage_get", "task_storage_delete",
        "trace_printk", "get_current_task", "get_current_task_btf", "get_current_comm", "probe_read_user", "probe_read_kernel",
        "probe_read_user_str", "probe_read_kernel_str", "copy_from_user", "copy_from_user_task", "snprintf_btf", "snprintf",
        "task_pt_regs", "trace_vprintk", "perf_event_read", "perf_event_read_value", "send_signal", "send_signal_thread",
        "get_task_stack", "get_branch_snapshot", "find_vma",
    ];

    static readonly HashSet<int> s_ids = [.. s_allowed.Select(HelperNames.Id).Where(id => id > 0)];

    /// <summary>True when the kernel offers helper <paramref name="id"/> to SK_LOOKUP programs.</summary>
    public static bool IsAllowed(int id) => s_ids.Contains(id);

    /// <summary>The helper's kernel name and id as messages print it: <c>bpf_sk_assign#124</c>.</summary>
    public static string Display(int id) => $"{HelperNames.Name(id) ?? "unknown"}#{id}";

    static int Id(string name) => HelperNames.Id(name);

    /// <summary>True when a map of type <paramref name="mapType"/> may be passed to helper <paramref name="id"/>.</summary>
    public static bool MapCompatible(MapType mapType, int id)
    {
        string name = HelperNames.Name(id)?[4..] ?? "";
        bool mapOk = mapType switch
        {
            MapType.ProgArray => name == "tail_call",
            MapType.PerfEventArray => name is "perf_event_read" or "perf_event_output" or "perf_event_read_value",
            MapType.RingBuf => name is "ringbuf_output" or "ringbuf_reserve" or "ringbuf_query" or "ringbuf_reserve_dynptr",
            MapType.SockMap or MapType.SockHash => name is "map_lookup_elem" or "map_update_elem" or "map_delete_elem",
            MapType.ReuseportSockArray => false,
            MapType.ArrayOfMaps or MapType.HashOfMaps => name is "map_lookup_elem",
            _ => true,
        };
        if (!mapOk) return false;
        return name switch
        {
            "tail_call" => mapType == MapType.ProgArray,
            "perf_event_read" or "perf_event_output" or "perf_event_read_value" => mapType == MapType.PerfEventArray,
            "ringbuf_output" or "ringbuf_reserve" or "ringbuf_query" => mapType == MapType.RingBuf,
            "map_push_elem" or "map_pop_elem" or "map_peek_elem" => mapType is MapType.Queue or MapType.Stack or MapType.BloomFilter,
            "map_lookup_percpu_elem" => mapType is MapType.PerCpuArray or MapType.PerCpuHash or MapType.LruPerCpuHash,
            "for_each_map_elem" => mapType is MapType.Hash or MapType.LruHash or MapType.Array or MapType.PerCpuHash or MapType.PerCpuArray or MapType.LruPerCpuHash,
            _ => true,
        };
    }
}
