/* The first program is rejected, NAME_fixed is accepted.
 * expect: At callback return the register R0 has smin=2 smax=2 should have been in [0, 1] */
#include "common.h"

static long count_one(__u32 index, void *data)
{
	(*(__u32 *)data)++;
	return 2; /* meant "stop", but bpf_loop callbacks return 0 (go on) or 1 (stop) */
}

static long count_one_fixed(__u32 index, void *data)
{
	(*(__u32 *)data)++;
	return 0;
}

SEC("sk_lookup")
int callback(struct bpf_sk_lookup *ctx)
{
	__u32 n = 0;

	bpf_loop(4, count_one, &n, 0);
	return n == 4 ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int callback_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 n = 0;

	bpf_loop(4, count_one_fixed, &n, 0);
	return n == 4 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
