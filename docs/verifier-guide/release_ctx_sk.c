/* The first program is rejected, NAME_fixed is accepted.
 * expect: must be referenced when passed to release function */
#include "common.h"

SEC("sk_lookup")
int release_ctx_sk(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	if (sk)
		bpf_sk_release(sk); /* ctx->sk is borrowed, not acquired */
	return SK_PASS;
}

SEC("sk_lookup")
int release_ctx_sk_fixed(struct bpf_sk_lookup *ctx)
{
	/* Read what you need from ctx->sk after the NULL check; do not release it. */
	struct bpf_sock *sk = ctx->sk;

	return sk && sk->src_port == 53 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
