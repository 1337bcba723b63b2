/* The first program is rejected, NAME_fixed is accepted.
 * expect: R1 has no valid kptr */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

SEC("sk_lookup")
int not_provided(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u64 *slot = bpf_map_lookup_elem(&slots, &key);

	if (!slot)
		return SK_PASS;
	return bpf_kptr_xchg(slot, 0) ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int not_provided_fixed(struct bpf_sk_lookup *ctx)
{
	/* A userspace stack has no kernel objects to hold: keep a value the host can read instead. */
	__u32 key = 0;
	__u64 *slot = bpf_map_lookup_elem(&slots, &key);

	if (!slot)
		return SK_PASS;
	return *slot ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
