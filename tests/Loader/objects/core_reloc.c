/* A CO-RE field access: the loader parses the relocation and notes it, without applying it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sk_lookup_view {
	__u32 family;
	__u32 protocol;
} __attribute__((preserve_access_index));

SEC("sk_lookup") int core_prog(struct bpf_sk_lookup *ctx)
{
	struct sk_lookup_view *v = (void *)ctx;
	return __builtin_preserve_field_info(v->protocol, 0) == 4 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
