/* Port redirect: connections to port 7007 go to the socket in redir_map[0] (kernel selftest redir_port). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

#define DST_PORT 7007
#define SERVER_A 0

SEC("sk_lookup")
int redir_port(struct bpf_sk_lookup *ctx)
{
	__u32 key = SERVER_A;
	struct bpf_sock *sk;
	long err;

	if (ctx->local_port != DST_PORT)
		return SK_PASS;

	sk = bpf_map_lookup_elem(&redir_map, &key);
	if (!sk)
		return SK_PASS;

	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
