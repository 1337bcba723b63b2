/* A CO-RE load of a field the target types do not have: the loader refuses it, naming the instruction. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_sk_lookup___missing {
	__u32 family;
	__u32 no_such_field;
} __attribute__((preserve_access_index));

SEC("sk_lookup") int core_missing(struct bpf_sk_lookup *ctx)
{
	struct bpf_sk_lookup___missing *v = (void *)ctx;

	return v->family == 2 && v->no_such_field == 1 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
