/* A tubular-style dispatcher: bindings (protocol, prefix, port) -> destination id -> socket.
 * A wildcard-port binding (port 0) wins over an exact-port binding only with a longer prefix. */
#include "common.h"

#define MAX_DESTINATIONS 1024

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

struct destination_metrics {
	__u64 lookups;
	__u64 misses;
	__u64 errors_bad_socket;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1000000);
	__type(key, struct addr);
	__type(value, struct binding);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, MAX_DESTINATIONS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sockets SEC(".maps");

/* Used only by userspace; its sizes are patched by the host before the map is created. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DESTINATIONS);
	__uint(key_size, 0);
	__uint(value_size, 0);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} destinations SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DESTINATIONS);
	__type(key, __u32);
	__type(value, struct destination_metrics);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} destination_metrics SEC(".maps");

/* The key is packed, so its address bytes are not 4-byte aligned: build the address in an aligned
 * local and copy it byte-wise (the verifier rejects misaligned stack stores). */
static __always_inline void fill_local_addr(struct bpf_sk_lookup *ctx, struct addr *key)
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

SEC("sk_lookup/dispatcher")
int dispatcher(struct bpf_sk_lookup *ctx)
{
	struct addr key = {
		.prefixlen = (sizeof(struct addr) - sizeof(__u32)) * 8,
		.protocol = ctx->protocol,
		.port = ctx->local_port,
	};
	struct binding *bind, *wildcard;
	struct destination_metrics *metrics;
	struct bpf_sock *sk;
	__u32 id;

	fill_local_addr(ctx, &key);

	bind = bpf_map_lookup_elem(&bindings, &key);
	key.port = 0;
	wildcard = bpf_map_lookup_elem(&bindings, &key);

	if (bind && wildcard) {
		if (wildcard->prefixlen > bind->prefixlen)
			bind = wildcard;
	} else if (!bind) {
		bind = wildcard;
	}
	if (!bind)
		return SK_PASS;

	id = bind->id;
	metrics = bpf_map_lookup_elem(&destination_metrics, &id);
	if (!metrics)
		return SK_DROP;
	metrics->lookups++;

	sk = bpf_map_lookup_elem(&sockets, &id);
	if (!sk) {
		metrics->misses++;
		return SK_DROP;
	}

	if (bpf_sk_assign(ctx, sk, 0)) {
		metrics->errors_bad_socket++;
		bpf_sk_release(sk);
		return SK_DROP;
	}
	bpf_sk_release(sk);
	return SK_PASS;
}

char _license[] SEC("license") = "BSD-3-Clause";
