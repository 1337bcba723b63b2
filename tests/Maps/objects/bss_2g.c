/* A 2 GiB .bss (issue 19): libbpf makes it an ARRAY of one 2 GiB value and Linux 6.18 creates it (an ARRAY
 * value may be up to INT_MAX bytes). The program writes a byte near its start and its
 * last byte, or the byte at 2^29 - 1 (the largest constant a pointer may move by: BPF_MAX_VAR_OFF). */
#include "../../programs/common.h"

char big[1u << 31];

SEC("sk_lookup")
int bss_2g(struct bpf_sk_lookup *ctx)
{
	big[ctx->local_port & 0xfff] = 1;
	big[sizeof(big) < (1u << 29) ? sizeof(big) - 1 : (1u << 29) - 1] = 2;
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
