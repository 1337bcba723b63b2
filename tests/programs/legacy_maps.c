/* Maps declared the old way (struct bpf_map_def in the "maps" section) and a "version" section. */
#include "common.h"

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_sockets = {
	.type = BPF_MAP_TYPE_SOCKMAP,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 16,
};

struct bpf_map_def SEC("maps") legacy_hits = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

SEC("sk_lookup")
int legacy_redir(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0, idx = ctx->local_port & 15;
	struct bpf_sock *sk;
	__u64 *hits;
	long err;

	hits = bpf_map_lookup_elem(&legacy_hits, &zero);
	if (hits)
		(*hits)++;

	sk = bpf_map_lookup_elem(&legacy_sockets, &idx);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x050a00;
