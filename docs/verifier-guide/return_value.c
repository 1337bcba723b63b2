/* The first program is rejected, NAME_fixed is accepted.
 * expect: At program exit the register R0 has smin=2 smax=2 should have been in [0, 1] */
#include "common.h"

SEC("sk_lookup")
int return_value(struct bpf_sk_lookup *ctx)
{
	if (ctx->local_port == 22)
		return 2; /* only SK_DROP (0) and SK_PASS (1) */
	return SK_PASS;
}

SEC("sk_lookup")
int return_value_fixed(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port == 22 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
