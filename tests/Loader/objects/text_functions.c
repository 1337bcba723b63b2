/* Global functions in .text: one called by a program (a global subprogram, linked in) and one
 * nobody calls (reported as a program of unknown type, for the host to type or ignore). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__attribute__((noinline)) int global_helper(int x)
{
	return x & 1;
}

__attribute__((noinline)) int orphan(int x)
{
	return x + 1;
}

SEC("sk_lookup") int uses_global(struct bpf_sk_lookup *ctx)
{
	return global_helper(ctx->local_port);
}

char _license[] SEC("license") = "GPL";
