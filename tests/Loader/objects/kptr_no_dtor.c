/* A referenced kptr to a struct without a destructor kfunc: the kernel refuses the map (ENOENT), BpfJit the object.
 * build.sh completes the declared struct sock (complete_fwd.py says why). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sock;
struct value {
	struct sock __attribute__((btf_type_tag("kptr"))) *sk;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct value);
} no_dtor SEC(".maps");

SEC("sk_lookup") int prog(struct bpf_sk_lookup *ctx)
{
	int k = 0;
	return bpf_map_lookup_elem(&no_dtor, &k) ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
