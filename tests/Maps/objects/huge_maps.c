/* Map declarations at the u32 edges (issue 19): an ARRAY and a SOCKMAP of 2^32 - 1 entries. Linux refuses
 * both with ENOMEM (the kernel cannot allocate them); BpfJit must answer the same, never overflow or abort. */
#include "../../programs/common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 0xffffffffu);
	__type(key, __u32);
	__type(value, __u64);
} huge_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 0xffffffffu);
	__type(key, __u32);
	__type(value, __u64);
} huge_sockmap SEC(".maps");

SEC("sk_lookup")
int huge_maps(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&huge_array, &key);
	struct bpf_sock *sk;

	if (v)
		*v += 1;
	sk = bpf_map_lookup_elem(&huge_sockmap, &key);
	if (sk) {
		bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
	}
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
