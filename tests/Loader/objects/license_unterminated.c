// A license string without its NUL: char[3] = "GPL" leaves the terminator out, so the `license` section
// is 3 bytes. libbpf copies up to the section's end and the program is GPL: bpf_trace_printk loads.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_lookup")
int printk_gpl(struct bpf_sk_lookup *ctx)
{
    char fmt[] = "port %u";
    bpf_trace_printk(fmt, sizeof(fmt), ctx->local_port);
    return SK_PASS;
}

char _license[3] SEC("license") = "GPL";
