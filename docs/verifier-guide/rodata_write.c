/* The first program is rejected, NAME_fixed is accepted.
 * expect: write into map forbidden */
#include "common.h"

const volatile __u32 blocked_port = 7777;

SEC("sk_lookup")
int rodata_write(struct bpf_sk_lookup *ctx)
{
	*(volatile __u32 *)&blocked_port = ctx->local_port; /* .rodata is read-only to programs */
	return SK_PASS;
}

__u32 last_port; /* .bss: writable by programs */

SEC("sk_lookup")
int rodata_write_fixed(struct bpf_sk_lookup *ctx)
{
	last_port = ctx->local_port;
	return ctx->local_port == blocked_port ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
