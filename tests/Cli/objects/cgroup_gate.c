/* Passes a lookup only when the running thread is under the cgroup in slot 0 of the CGROUP_ARRAY `gate`
 * (bpf_current_task_under_cgroup: 1 under it, 0 not, -EAGAIN for an empty slot): the CLI's --cgroup and the
 * scenario files' "cgroup" entries fill the slot (tests/Cli/CgroupArrayCliTests.cs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 2);
} gate SEC(".maps");

SEC("sk_lookup")
int cgroup_gate(struct bpf_sk_lookup *ctx)
{
	return bpf_current_task_under_cgroup(&gate, 0) == 1 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
