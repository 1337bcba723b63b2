/* may_goto from C: clang 14 has no may_goto mnemonic, so cond_break emits the instruction as bytes
 * (the fallback of the kernel selftests' bpf_experimental.h): BPF_JMP|BPF_JCOND to the loop's break. */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define cond_break                                                                             \
	({                                                                                     \
		__label__ l_break, l_continue;                                                 \
		asm volatile goto("1:.byte 0xe5; .byte 0; .long ((%l[l_break] - 1b - 8) / 8) & 0xffff; .short 0" \
				  :::: l_break);                                               \
		goto l_continue;                                                               \
	l_break:                                                                               \
		break;                                                                         \
	l_continue:;                                                                           \
	})

/* A loop bounded only by the packet (local_port iterations): may_goto ends it. The index is never
 * needed exactly (no decided branch reads it), so the verifier widens it and the loop converges. */
// expect: accept
SEC("sk_lookup/can_loop_count")
int can_loop_count(struct bpf_sk_lookup *ctx)
{
	__u32 n = ctx->local_port;

	for (__u32 i = 0; i < n; i++) {
		if ((i ^ ctx->remote_port) == 7)
			return SK_DROP;
		cond_break;
	}
	return SK_PASS;
}

/* The loop index reaches a stack array without a bound check: may_goto does not bound it. */
// expect: reject invalid write to stack
SEC("sk_lookup/can_loop_unbounded_index")
int can_loop_unbounded_index(struct bpf_sk_lookup *ctx)
{
	volatile char buf[16] = {};
	__u32 n = ctx->local_port;

	for (__u32 i = 0; i < n; i++) {
		buf[i] = 1;
		cond_break;
	}
	return buf[3] == 1 ? SK_PASS : SK_DROP;
}

/* The same loop with the index checked: accepted. */
// expect: accept
SEC("sk_lookup/can_loop_bounded_index")
int can_loop_bounded_index(struct bpf_sk_lookup *ctx)
{
	volatile char buf[16] = {};
	__u32 n = ctx->local_port;

	for (__u32 i = 0; i < n; i++) {
		if (i >= sizeof(buf))
			break;
		buf[i] = 1;
		cond_break;
	}
	return buf[3] == 1 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
