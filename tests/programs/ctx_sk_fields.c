/* Reads of ctx->sk (struct bpf_sock) fields before and after an assign (kernel selftest access_ctx_sk). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

#define BPF_TCP_LISTEN 10
#define SOCK_STREAM 1

SEC("sk_lookup")
int ctx_sk_fields(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct bpf_sock *sk;
	int ret = SK_DROP;

	/* Nothing selected yet; reading through ctx->sk needs a NULL check. */
	if (ctx->sk && ctx->sk->family == AF_INET)
		return SK_DROP;

	sk = bpf_map_lookup_elem(&redir_map, &key);
	if (!sk)
		return SK_PASS;
	if (bpf_sk_assign(ctx, sk, 0))
		goto out;
	if (ctx->sk != sk)
		goto out;
	if (ctx->sk->family != AF_INET || ctx->sk->type != SOCK_STREAM ||
	    ctx->sk->state != BPF_TCP_LISTEN || ctx->sk->protocol != IPPROTO_TCP)
		goto out;
	if (ctx->sk->src_port != 7007 || ctx->sk->src_ip4 != bpf_htonl(0x7f000001))
		goto out;
	if (ctx->sk->bound_dev_if != 0 || ctx->sk->mark != 0 || ctx->sk->priority != 0)
		goto out;
	if (ctx->sk->dst_port != 0 || ctx->sk->dst_ip4 != 0 || ctx->sk->src_ip6[3] != 0 ||
	    ctx->sk->dst_ip6[0] != 0 || (int)ctx->sk->rx_queue_mapping != -1)
		goto out;
	ret = SK_PASS;
out:
	bpf_sk_release(sk);
	return ret;
}

char _license[] SEC("license") = "Dual BSD/GPL";
