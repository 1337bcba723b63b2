/* bpf_loop with a static callback: the callback's address is an ld_imm64 relocated against .text,
 * which the loader turns into BPF_PSEUDO_FUNC and links like a called subprogram. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct loop_ctx {
	__u32 port;
	__u32 hits;
};

static int count_port(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	if (c->port == 1000 + index)
		c->hits++;
	return 0;
}

SEC("sk_lookup") int loop_prog(struct bpf_sk_lookup *ctx)
{
	struct loop_ctx c = { .port = ctx->local_port };

	bpf_loop(16, count_port, &c, 0);
	return c.hits ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
