/* Map-in-map end to end: the destination port picks a tenant through an inner ARRAY of a HASH_OF_MAPS, and the
 * tenant's inner SOCKMAP of an ARRAY_OF_MAPS holds the socket the connection goes to. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sock_slots {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} socks_a SEC(".maps"), socks_b SEC(".maps");

/* tenant index -> that tenant's sockets */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct sock_slots);
} tenants SEC(".maps") = { .values = { [0] = &socks_a, [1] = &socks_b } };

struct tenant_of {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} port1_tenant SEC(".maps"), port2_tenant SEC(".maps");

/* local_port - 7000 -> an ARRAY whose one value is the tenant index */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct tenant_of);
} by_port SEC(".maps") = { .values = { [1] = &port1_tenant, [2] = &port2_tenant } };

SEC("sk_lookup")
int select_tenant(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port - 7000, zero = 0;
	struct bpf_sock *sk;
	__u32 *tenant;
	void *inner;
	long err;

	inner = bpf_map_lookup_elem(&by_port, &port);
	if (!inner)
		return SK_PASS;
	tenant = bpf_map_lookup_elem(inner, &zero);
	if (!tenant)
		return SK_PASS;
	inner = bpf_map_lookup_elem(&tenants, tenant);
	if (!inner)
		return SK_DROP;
	sk = bpf_map_lookup_elem(inner, &zero);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
