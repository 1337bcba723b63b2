/* Four programs meant to be attached together, in this order, as a chain on one hook:
 *   chain_count  counts lookups per protocol in an ARRAY (atomic add), passes;
 *   chain_deny   drops IPv4 sources listed in a HASH;
 *   chain_ports  drops privileged destination ports other than 22, 80 and 443;
 *   chain_redir  redirects by destination port through a HASH and a SOCKMAP (as redir_port). */
#include "../../tests/programs/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} denied SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} chain_port_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} chain_socks SEC(".maps");

SEC("sk_lookup")
int chain_count(struct bpf_sk_lookup *ctx)
{
	__u32 key = ctx->protocol & 0xff;
	__u64 *count = bpf_map_lookup_elem(&counters, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return SK_PASS;
}

SEC("sk_lookup")
int chain_deny(struct bpf_sk_lookup *ctx)
{
	__u32 addr;

	if (ctx->family != AF_INET)
		return SK_PASS;
	addr = ctx->remote_ip4;
	return bpf_map_lookup_elem(&denied, &addr) ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int chain_ports(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;

	if (port < 1024 && port != 22 && port != 80 && port != 443)
		return SK_DROP;
	return SK_PASS;
}

SEC("sk_lookup")
int chain_redir(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;
	struct bpf_sock *sk;
	__u32 *index;
	long err;

	index = bpf_map_lookup_elem(&chain_port_map, &port);
	if (!index)
		return SK_PASS;
	sk = bpf_map_lookup_elem(&chain_socks, index);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
