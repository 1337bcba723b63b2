/* IPv4 address redirect: 127.0.0.1:7007 goes to redir_map[0] (kernel selftest redir_ip4). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

SEC("sk_lookup")
int redir_ip4(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct bpf_sock *sk;
	long err;

	if (ctx->family != AF_INET)
		return SK_PASS;
	if (ctx->local_port != 7007)
		return SK_PASS;
	if (ctx->local_ip4 != bpf_htonl(0x7f000001))
		return SK_PASS;

	sk = bpf_map_lookup_elem(&redir_map, &key);
	if (!sk)
		return SK_PASS;

	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
