/* The first program is rejected, NAME_fixed is accepted.
 * expect: R1 type=sock_or_null expected=sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_ */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

SEC("sk_lookup")
int unchecked_sk(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct bpf_sock *sk = bpf_map_lookup_elem(&socks, &key);
	long err = bpf_sk_assign(ctx, sk, 0);

	bpf_sk_release(sk); /* sk may be NULL here */
	return err ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int unchecked_sk_fixed(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct bpf_sock *sk = bpf_map_lookup_elem(&socks, &key);
	long err = bpf_sk_assign(ctx, sk, 0); /* NULL is allowed here: it selects no socket */

	if (sk)
		bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
