/* The first program is rejected, NAME_fixed is accepted.
 * expect: dereference of modified ctx ptr R1 off=40 disallowed */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32[4]);
	__type(value, __u32);
} allowed SEC(".maps");

SEC("sk_lookup")
int merged_ctx(struct bpf_sk_lookup *ctx)
{
	__u32 ip[4] = {};

	if (ctx->family == 2) {
		ip[3] = ctx->local_ip4;
	} else if (ctx->family == 10) {
		ip[0] = ctx->local_ip6[0];
		ip[1] = ctx->local_ip6[1];
		ip[2] = ctx->local_ip6[2];
		ip[3] = ctx->local_ip6[3];
	}
	return bpf_map_lookup_elem(&allowed, ip) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int merged_ctx_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 ip[4] = {};

	if (ctx->family == 2) {
		ip[3] = ctx->local_ip4;
	} else if (ctx->family == 10) {
		/* one volatile read per field keeps each load at ctx + a constant */
		ip[0] = *(volatile __u32 *)&ctx->local_ip6[0];
		ip[1] = *(volatile __u32 *)&ctx->local_ip6[1];
		ip[2] = *(volatile __u32 *)&ctx->local_ip6[2];
		ip[3] = *(volatile __u32 *)&ctx->local_ip6[3];
	}
	return bpf_map_lookup_elem(&allowed, ip) ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
