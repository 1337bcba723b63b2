/* Redirect by 4-tuple: a SOCKHASH keyed by (remote ip, local ip, remote port, local port). */
#include "common.h"

struct tuple {
	__u32 remote_ip[4];
	__u32 local_ip[4];
	__u16 remote_port; /* network order */
	__u16 local_port;  /* host order */
	__u32 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 256);
	__type(key, struct tuple);
	__type(value, __u64);
} tuple_map SEC(".maps");

SEC("sk_lookup")
int sockhash_tuple(struct bpf_sk_lookup *ctx)
{
	struct tuple key = {};
	struct bpf_sock *sk;
	long err;

	key.family = ctx->family;
	if (ctx->family == AF_INET) {
		key.remote_ip[3] = ctx->remote_ip4;
		key.local_ip[3] = ctx->local_ip4;
		/* A compiler barrier in each branch keeps clang from sinking the branches' last loads
		 * into one load through ctx + a variable offset, which verifiers refuse
		 * ("dereference of modified ctx ptr"). */
		asm volatile("" ::: "memory");
	} else {
		key.remote_ip[0] = ctx->remote_ip6[0];
		key.remote_ip[1] = ctx->remote_ip6[1];
		key.remote_ip[2] = ctx->remote_ip6[2];
		key.remote_ip[3] = ctx->remote_ip6[3];
		key.local_ip[0] = ctx->local_ip6[0];
		key.local_ip[1] = ctx->local_ip6[1];
		key.local_ip[2] = ctx->local_ip6[2];
		key.local_ip[3] = ctx->local_ip6[3];
		asm volatile("" ::: "memory");
	}
	key.remote_port = ctx->remote_port;
	key.local_port = ctx->local_port;

	sk = bpf_map_lookup_elem(&tuple_map, &key);
	if (!sk)
		return SK_PASS;

	err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
