/* A map value pointer with a type tag that is no kptr tag: a plain pointer, for the kernel and BpfJit. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task_struct;
struct value {
	struct task_struct __attribute__((btf_type_tag("kptr_ref"))) *t;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct value);
} bad_tag SEC(".maps");

SEC("sk_lookup") int prog(struct bpf_sk_lookup *ctx)
{
	int k = 0;
	return bpf_map_lookup_elem(&bad_tag, &k) ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
