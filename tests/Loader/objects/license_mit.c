// A program under a license that is not GPL-compatible calling a GPL-only helper: the kernel refuses it
// with "cannot call GPL-restricted function from non-GPL compatible program".
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_lookup")
int printk_mit(struct bpf_sk_lookup *ctx)
{
    char fmt[] = "port %u";
    bpf_trace_printk(fmt, sizeof(fmt), ctx->local_port);
    return SK_PASS;
}

SEC("sk_lookup")
int prandom_mit(struct bpf_sk_lookup *ctx)
{
    return bpf_get_prandom_u32() & 1;
}

char _license[] SEC("license") = "MIT";
