/* The first program is rejected, NAME_fixed is accepted.
 * expect: callbacks are not supported */
#include "common.h"

static long count_one(__u32 index, void *data)
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

	for (int i = 0; i < 4; i++) /* a bounded loop instead of bpf_loop */
		n++;
	return n == 4 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
