/* The first program is rejected, NAME_fixed is accepted.
 * expect: R1 max value is outside of the allowed memory range */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[64]);
} allowed SEC(".maps");

SEC("sk_lookup")
int variable_index(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u8 *bits = bpf_map_lookup_elem(&allowed, &key);

	if (!bits)
		return SK_PASS;
	return bits[ctx->local_port / 8] ? SK_PASS : SK_DROP; /* no upper bound on the index */
}

SEC("sk_lookup")
int variable_index_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0, index = ctx->local_port / 8;
	__u8 *bits = bpf_map_lookup_elem(&allowed, &key);

	if (!bits || index >= 64) /* an upper bound the verifier can see */
		return SK_PASS;
	return bits[index] ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
