/* The first program is rejected, NAME_fixed is accepted.
 * expect: is not provided by this runtime */
#include "common.h"

SEC("sk_lookup")
int not_provided(struct bpf_sk_lookup *ctx)
{
	__u64 stack[4];

	return bpf_get_task_stack(bpf_get_current_task_btf(), stack, sizeof(stack), 0) > 0 ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int not_provided_fixed(struct bpf_sk_lookup *ctx)
{
	/* A userspace stack has no kernel stacks to walk: decide on the packet instead. */
	return ctx->local_port == 1 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
