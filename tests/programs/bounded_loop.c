/* A bounded loop (not unrolled): is the local port in a small deny list? */
#include "common.h"

#define NPORTS 8

SEC("sk_lookup")
int bounded_loop(struct bpf_sk_lookup *ctx)
{
	const __u16 denied[NPORTS] = { 21, 23, 25, 110, 135, 139, 445, 3389 };
	__u32 port = ctx->local_port;
	int i;

#pragma clang loop unroll(disable)
	for (i = 0; i < NPORTS; i++) {
		if (denied[i] == port)
			return SK_DROP;
	}
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
