/* Global data in .rodata, .data, .bss and a custom .data.* section, plus bpf_printk
 * (whose format strings clang puts in .rodata). */
#include "common.h"

/* .rodata: the host may rewrite these before loading. */
const volatile __u32 target_port = 7007;
const volatile __u32 target_ip4 = 0x0100007f; /* 127.0.0.1 in network order */

/* .data */
__u32 verdict_on_match = SK_PASS;
__u64 seen_ports[4] = { 1, 2, 3, 4 };

/* .bss */
__u64 lookups;
__u64 matches;

/* A named data section, loaded as its own map. */
__u32 sample_rate SEC(".data.config") = 16;

SEC("sk_lookup")
int global_data(struct bpf_sk_lookup *ctx)
{
	__u32 slot = ctx->local_port & 3;

	lookups++;
	seen_ports[slot] = ctx->local_port;
	if ((lookups % sample_rate) == 0)
		bpf_printk("lookup %u port %u", (__u32)lookups, ctx->local_port);

	if (ctx->local_port != target_port || ctx->local_ip4 != target_ip4)
		return SK_PASS;

	matches++;
	bpf_printk("match");
	/* .data is writable, so the verifier cannot assume its value: return a proven 0 or 1. */
	return verdict_on_match == SK_DROP ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
