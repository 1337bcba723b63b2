/* bpf-to-bpf calls: noinline static functions, one calling another, shared by two programs. */
#include "common.h"

static __attribute__((noinline)) __u32 hash_u32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	return x;
}

static __attribute__((noinline)) __u32 hash_addr(struct bpf_sk_lookup *ctx)
{
	__u32 h;

	if (ctx->family == AF_INET)
		h = hash_u32(ctx->local_ip4);
	else
		h = hash_u32(ctx->local_ip6[0] ^ ctx->local_ip6[1] ^ ctx->local_ip6[2] ^ ctx->local_ip6[3]);
	return hash_u32(h ^ ctx->local_port);
}

static __attribute__((noinline)) int is_privileged_port(__u32 port)
{
	return port < 1024;
}

SEC("sk_lookup")
int subprog_hash(struct bpf_sk_lookup *ctx)
{
	if (is_privileged_port(ctx->local_port))
		return SK_PASS;
	return (hash_addr(ctx) & 1) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int subprog_port(struct bpf_sk_lookup *ctx)
{
	return is_privileged_port(ctx->local_port) ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
