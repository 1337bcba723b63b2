/* The first program is rejected, NAME_fixed is accepted.
 * expect: is not provided by this runtime */
#include "common.h"

SEC("sk_lookup")
int not_provided(struct bpf_sk_lookup *ctx)
{
	return bpf_get_current_cgroup_id() == 1 ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int not_provided_fixed(struct bpf_sk_lookup *ctx)
{
	/* A userspace stack has no cgroups: decide on the packet instead. */
	return ctx->local_port == 1 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
