// One map declared the legacy way (a struct bpf_map_def in SEC("maps")): its five u32 fields (type, key_size,
// value_size, max_entries, map_flags) stand in the object's bytes, so ObjectMapVerdictTests rewrites them to declare
// any map BPF_MAP_CREATE can be asked for. The template's max_entries, 0x5a17, marks the definition to find.
// The program looks the map up, so a map the verifier saw instead of the map step would show in its verdict.
// Build: clang -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c legacy_map.c
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct legacy_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct legacy_map_def m SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = 4,
	.value_size = 8,
	.max_entries = 0x5a17,
	.map_flags = 0,
};

SEC("sk_lookup")
int prog(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	void *value = bpf_map_lookup_elem(&m, &key);
	return value ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
