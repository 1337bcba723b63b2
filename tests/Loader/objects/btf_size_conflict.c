// A BTF-defined map that gives its key or value size twice, as a number and as a type, in either order. libbpf
// refuses the object unless the two agree: "map 'm': conflicting key size 4 != 8." (the size seen first, then
// the new one). Built once per variant: clang -O2 -g -target bpf -DFIRST=... -DSECOND=... -o btf_<variant>.o
// (see build lines below); btf_size_agree.o gives both sizes consistently and is accepted.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	FIRST;
	SECOND;
} m SEC(".maps");

SEC("sk_lookup")
int prog(struct bpf_sk_lookup *ctx)
{
	__u64 k = 0;
	bpf_map_lookup_elem(&m, &k);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";

// btf_key_size_then_key:     -DFIRST='__uint(key_size, 4)'   -DSECOND='__type(key, __u64)'
// btf_key_then_key_size:     -DFIRST='__type(key, __u64)'    -DSECOND='__uint(key_size, 4)'
// btf_value_size_then_value: -DFIRST='__uint(value_size, 8)' -DSECOND='__type(value, __u32)'
// btf_value_then_value_size: -DFIRST='__type(value, __u32)'  -DSECOND='__uint(value_size, 8)'
// btf_size_agree:            -DFIRST='__uint(key_size, 8); __type(key, __u64)' -DSECOND='__type(value, __u64); __uint(value_size, 8)'
