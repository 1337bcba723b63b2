/* A raw BPF_PSEUDO_MAP_FD ld_imm64 with no relocation (fd 1), as the kernel's hand-written verifier selftests
 * have: the object loads, the verifier rejects that program alone as the kernel does, the other program is accepted. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_lookup") __attribute__((naked)) int raw_fd(struct bpf_sk_lookup *ctx)
{
	/* r1 = map[fd:1] ll: opcode 0x18, dst 1, src 1 (BPF_PSEUDO_MAP_FD), imm 1. */
	asm volatile (".8byte 0x0000000100001118;"
		      ".8byte 0;"
		      "r0 = 1;"
		      "exit;");
}

SEC("sk_lookup") int good(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
