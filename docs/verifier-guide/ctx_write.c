/* The first program is rejected, NAME_fixed is accepted.
 * expect: invalid bpf_context access off=60 size=4 */
#include "common.h"

SEC("sk_lookup")
int ctx_write(struct bpf_sk_lookup *ctx)
{
	ctx->local_port = 8080; /* the context is read-only */
	return SK_PASS;
}

SEC("sk_lookup")
int ctx_write_fixed(struct bpf_sk_lookup *ctx)
{
	/* To steer a connection, select a socket with bpf_sk_assign instead. */
	return ctx->local_port == 8080 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
