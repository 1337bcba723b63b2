/* CO-RE field accesses against BpfJit's target types: a local view of struct bpf_sk_lookup with its own member
 * order (the ___local flavour is ignored when matching), so every load is relocated to the real offset, plus
 * field existence and size checks. Port 7001 over TCP drops; everything else passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_sk_lookup___local {
	__u32 local_port;
	__u32 protocol;
	__u32 family;
	__u32 no_such_field;
} __attribute__((preserve_access_index));

SEC("sk_lookup") int core_prog(struct bpf_sk_lookup *ctx)
{
	struct bpf_sk_lookup___local *v = (void *)ctx;

	if (__builtin_preserve_field_info(v->no_such_field, 2 /* exists */))
		return SK_PASS;
	if (__builtin_preserve_field_info(v->local_port, 1 /* byte size */) != 4)
		return SK_PASS;
	if (v->local_port == 7001 && v->protocol == 6 /* IPPROTO_TCP */ && v->family != 0)
		return SK_DROP;
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
