/* The first program is rejected, NAME_fixed is accepted.
 * expect: invalid access to map value, value_size=16 off=16 size=4 */
#include "common.h"

struct config {
	__u32 ports[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

SEC("sk_lookup")
int value_bounds(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct config *c = bpf_map_lookup_elem(&config, &key);

	if (!c)
		return SK_PASS;
	return c->ports[4] == ctx->local_port ? SK_DROP : SK_PASS; /* ports has 4 entries: 0..3 */
}

SEC("sk_lookup")
int value_bounds_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct config *c = bpf_map_lookup_elem(&config, &key);

	if (!c)
		return SK_PASS;
	return c->ports[3] == ctx->local_port ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
