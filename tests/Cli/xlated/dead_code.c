/* For dump --xlated: a branch on a frozen .rodata constant the verifier proves never taken (dead code), a
 * division by a value proved non-zero, a context load and a map lookup.
 * Build: clang -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -I../../programs -c dead_code.c -o dead_code.o */
#include "common.h"

const volatile __u32 drop_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("sk_lookup")
int dead_code(struct bpf_sk_lookup *ctx)
{
	__u32 key = ctx->local_port % 4;
	__u64 *count;

	if (drop_port && ctx->local_port == drop_port)
		return SK_DROP;
	count = bpf_map_lookup_elem(&counts, &key);
	if (count)
		*count += 1000 / (ctx->local_port | 1);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
