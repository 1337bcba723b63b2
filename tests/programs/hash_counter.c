/* Counts lookups per (protocol, local port) in a HASH map, atomically. */
#include "common.h"

struct port_key {
	__u32 protocol;
	__u32 port;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct port_key);
	__type(value, __u64);
} counters SEC(".maps");

SEC("sk_lookup")
int hash_counter(struct bpf_sk_lookup *ctx)
{
	struct port_key key = { .protocol = ctx->protocol, .port = ctx->local_port };
	__u64 one = 1, *count;

	count = bpf_map_lookup_elem(&counters, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&counters, &key, &one, BPF_NOEXIST);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
