/* A PROG_ARRAY slot naming a .text function that a program calls, a subprogram and not a program: refused, as libbpf refuses it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__attribute__((noinline)) int helper(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port == 7001 ? SK_DROP : SK_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = { .values = { [0] = (void *)&helper } };

SEC("sk_lookup") int entry(struct bpf_sk_lookup *ctx)
{
	bpf_tail_call(ctx, &jumps, 0);
	return helper(ctx);
}

char _license[] SEC("license") = "GPL";
