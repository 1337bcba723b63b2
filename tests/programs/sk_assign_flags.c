/* bpf_sk_assign with each flag and with NULL (kernel selftests sk_assign_eexist/replace/null). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

#define EEXIST 17

SEC("sk_lookup")
int sk_assign_flags(struct bpf_sk_lookup *ctx)
{
	__u32 key_a = 0, key_b = 1;
	struct bpf_sock *a, *b;
	int ret = SK_DROP;
	long err;

	/* NULL with no flags clears nothing and succeeds while nothing is selected. */
	if (bpf_sk_assign(ctx, NULL, 0))
		return SK_DROP;

	a = bpf_map_lookup_elem(&redir_map, &key_a);
	if (!a)
		return SK_PASS;
	b = bpf_map_lookup_elem(&redir_map, &key_b);
	if (!b)
		goto release_a;

	err = bpf_sk_assign(ctx, a, 0);
	if (err)
		goto release_both;
	/* A second assign without F_REPLACE must fail with -EEXIST. */
	err = bpf_sk_assign(ctx, b, 0);
	if (err != -EEXIST)
		goto release_both;
	/* NULL without F_REPLACE fails too; with F_REPLACE it clears the selection. */
	if (bpf_sk_assign(ctx, NULL, 0) != -EEXIST)
		goto release_both;
	if (bpf_sk_assign(ctx, NULL, BPF_SK_LOOKUP_F_REPLACE))
		goto release_both;
	/* Select B, skipping reuseport. */
	err = bpf_sk_assign(ctx, b, BPF_SK_LOOKUP_F_REPLACE | BPF_SK_LOOKUP_F_NO_REUSEPORT);
	if (err)
		goto release_both;
	/* An unknown flag is rejected before anything else. */
	if (bpf_sk_assign(ctx, a, 1ULL << 2) != -22)
		goto release_both;
	ret = SK_PASS;

release_both:
	bpf_sk_release(b);
release_a:
	bpf_sk_release(a);
	return ret;
}

char _license[] SEC("license") = "Dual BSD/GPL";
