/* Three small programs in one object: pass, drop and redirect, each recording that it ran. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} run_map SEC(".maps");

static __always_inline void mark_ran(__u32 which)
{
	__u32 one = 1;

	bpf_map_update_elem(&run_map, &which, &one, BPF_ANY);
}

SEC("sk_lookup/pass")
int multi_pass(struct bpf_sk_lookup *ctx)
{
	mark_ran(0);
	return SK_PASS;
}

SEC("sk_lookup/drop")
int multi_drop(struct bpf_sk_lookup *ctx)
{
	mark_ran(1);
	return SK_DROP;
}

SEC("sk_lookup/redir")
int multi_redir(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct bpf_sock *sk;

	sk = bpf_map_lookup_elem(&redir_map, &key);
	if (sk) {
		bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
	}
	mark_ran(2);
	return SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
