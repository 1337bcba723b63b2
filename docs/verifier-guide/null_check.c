/* The first program is rejected, NAME_fixed is accepted.
 * expect: R0 invalid mem access 'map_value_or_null' */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

SEC("sk_lookup")
int null_check(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&counters, &key);

	*count += 1; /* count may be NULL */
	return SK_PASS;
}

SEC("sk_lookup")
int null_check_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&counters, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
