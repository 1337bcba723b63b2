/* A map-in-map definition ('values'): the loader reads the inner map and the initial slots. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { [0] = &inner1 } };

SEC("sk_lookup") int uses_outer(struct bpf_sk_lookup *ctx)
{
	__u32 k = 0;
	return bpf_map_lookup_elem(&outer, &k) ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
