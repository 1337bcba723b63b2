/* bpf_spin_lock, bpf_loop and bpf_for_each_map_elem in one SK_LOOKUP program: every lookup for
 * port 7007 bumps a lock-protected counter; a bpf_loop callback and a for_each_map_elem callback
 * recompute values the program checks; odd-numbered lookups go to the socket in redir_map[0],
 * even ones fall through to the regular listeners. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct counter {
	struct bpf_spin_lock lock;
	__u32 hits;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

struct loop_ctx {
	__u64 sum;
};

static long add_index(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	return 0;
}

static long add_hits(void *map, __u32 *key, struct counter *value, void *data)
{
	struct loop_ctx *c = data;

	c->sum += value->hits;
	return 0;
}

SEC("sk_lookup")
int spin_lock_loop(struct bpf_sk_lookup *ctx)
{
	struct loop_ctx loop = { 0 }, total = { 0 };
	__u32 zero = 0, hits;
	struct counter *c;
	struct bpf_sock *sk;
	long err;

	if (ctx->local_port != 7007)
		return SK_PASS;
	c = bpf_map_lookup_elem(&counters, &zero);
	if (!c)
		return SK_DROP;
	bpf_spin_lock(&c->lock);
	hits = ++c->hits;
	bpf_spin_unlock(&c->lock);

	/* 0 + 1 + 2 + 3 */
	bpf_loop(4, add_index, &loop, 0);
	if (loop.sum != 6)
		return SK_DROP;
	bpf_for_each_map_elem(&counters, add_hits, &total, 0);
	if (total.sum != hits)
		return SK_DROP;
	if (!(hits & 1))
		return SK_PASS;

	sk = bpf_map_lookup_elem(&redir_map, &zero);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
