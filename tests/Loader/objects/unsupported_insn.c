/* One function of a section holds an instruction no eBPF version defines (BPF_JMP32|BPF_JCOND, 0xe6):
 * only the program that contains it is rejected; the other program of the same section loads. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_lookup") int bad_opcode(struct bpf_sk_lookup *ctx)
{
	asm volatile(".byte 0xe6, 0, 0, 0, 0, 0, 0, 0");
	return SK_PASS;
}

SEC("sk_lookup") int good(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port == 22 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
