/* A PROG_ARRAY with initial values (libbpf's __array(values, int (void *))): the loader records which program each
 * slot names and the host stores the programs once they are loaded. local_port - 7000 picks the slot:
 * 7001 tail-calls drop_prog (SK_DROP), 7002 pass_prog (SK_PASS), any other port falls through to SK_PASS... */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_lookup") int drop_prog(struct bpf_sk_lookup *ctx)
{
	return SK_DROP;
}

SEC("sk_lookup") int pass_prog(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = { .values = { [1] = (void *)&drop_prog, [2] = (void *)&pass_prog } };

/* ...except 7003, whose fall-through drops: a tail call that happened is told from one that did not. */
SEC("sk_lookup") int entry(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;

	bpf_tail_call(ctx, &jumps, port - 7000);
	return port == 7003 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
