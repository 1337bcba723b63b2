/* The LPM_TRIE lookup of the tubular-style dispatcher (tests/programs/dispatcher.c) on its own: the
 * dispatcher's key built from the context, then four lookups of different keys in its bindings map
 * (the exact port, the wildcard port 0, and the exact port for the two neighbouring addresses, the
 * last octet xor 1 and xor 2). No socket is selected: the result is SK_PASS when the sum of the
 * found ids is odd, else SK_DROP, so that every lookup's answer is used. The suite case
 * lpm_lookup_100k fills the map as dispatcher_100k does; program time minus trivial's is the cost
 * of four LPM lookups. */
#include "../../tests/programs/common.h"

struct addr {
	__u32 prefixlen;
	__u8 protocol;
	__u16 port;
	__u8 ip[16];
} __attribute__((packed));

struct binding {
	__u32 id;
	__u32 prefixlen;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1000000);
	__type(key, struct addr);
	__type(value, struct binding);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bindings SEC(".maps");

/* As dispatcher.c: the address is built in an aligned local and copied byte-wise into the packed key
 * (the neighbours are then made by flipping bits of the key's last byte). */
static __always_inline void fill_addr(struct bpf_sk_lookup *ctx, struct addr *key)
{
	__u32 ip[4];

	if (ctx->family == AF_INET) {
		ip[0] = 0;
		ip[1] = 0;
		ip[2] = bpf_htonl(0x0000ffff);
		ip[3] = ctx->local_ip4;
	} else if (ctx->family == AF_INET6) {
		ip[0] = ctx->local_ip6[0];
		ip[1] = ctx->local_ip6[1];
		ip[2] = ctx->local_ip6[2];
		ip[3] = ctx->local_ip6[3];
	} else {
		ip[0] = ip[1] = ip[2] = ip[3] = 0;
	}
	__builtin_memcpy(key->ip, ip, sizeof(ip));
}

static __always_inline __u32 id_of(struct addr *key)
{
	struct binding *bind = bpf_map_lookup_elem(&bindings, key);

	return bind ? bind->id : 0;
}

SEC("sk_lookup")
int lpm_lookup(struct bpf_sk_lookup *ctx)
{
	struct addr key = {
		.prefixlen = (sizeof(struct addr) - sizeof(__u32)) * 8,
		.protocol = ctx->protocol,
		.port = ctx->local_port,
	};
	__u32 sum;

	fill_addr(ctx, &key);
	sum = id_of(&key);
	key.port = 0;
	sum += id_of(&key);
	key.port = ctx->local_port;
	key.ip[15] ^= 1;	/* the last octet xor 1 */
	sum += id_of(&key);
	key.ip[15] ^= 3;	/* xor 2 */
	sum += id_of(&key);
	return (sum & 1) ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
