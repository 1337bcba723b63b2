/* The first program is rejected, NAME_fixed is accepted.
 * expect: program of this type cannot use helper bpf_get_socket_cookie#46 */
#include "common.h"

SEC("sk_lookup")
int helper(struct bpf_sk_lookup *ctx)
{
	return bpf_get_socket_cookie(ctx) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int helper_fixed(struct bpf_sk_lookup *ctx)
{
	/* SK_LOOKUP may call the helpers listed in docs/compatibility.md, e.g. bpf_get_prandom_u32. */
	return bpf_get_prandom_u32() & 1 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
