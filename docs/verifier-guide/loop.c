/* The first program is rejected, NAME_fixed is accepted.
 * expect: infinite loop detected */
#include "common.h"

SEC("sk_lookup")
int loop(struct bpf_sk_lookup *ctx)
{
	volatile __u32 i = 0;

	while (i < 10)
		; /* i never changes */
	return SK_PASS;
}

SEC("sk_lookup")
int loop_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 sum = 0;

	for (__u32 i = 0; i < 10; i++) /* a bound the verifier can follow */
		sum += ctx->local_port >> i;
	return sum & 1 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
