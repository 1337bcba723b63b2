/* UdpEcho's SK_LOOKUP program: steers UDP datagrams to the echo stack's sockets.
 *   - destination port DROP_PORT: refused (SK_DROP), whatever socket listens there;
 *   - destination address 10.77.0.2 or fd77::2, any port: the socket in steer_sockets[1];
 *   - destination ports RANGE_LO..RANGE_HI: the socket in steer_sockets[0];
 *   - anything else: SK_PASS, so the socket table's listeners decide.
 * An empty slot, or a socket bpf_sk_assign refuses, drops the datagram.
 * Build: ./build.sh (clang -O2 -g -target bpf ...); the committed steer.o is its output. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_UDP 17

#define RANGE_LO 7000
#define RANGE_HI 7009
#define DROP_PORT 7777
#define SLOT_RANGE 0
#define SLOT_ADDRESS 1

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} steer_sockets SEC(".maps");

static __always_inline int is_steered_address(struct bpf_sk_lookup *ctx)
{
	if (ctx->family == AF_INET)
		return ctx->local_ip4 == bpf_htonl(0x0a4d0002); /* 10.77.0.2 */
	if (ctx->family == AF_INET6)
		return ctx->local_ip6[0] == bpf_htonl(0xfd770000) && ctx->local_ip6[1] == 0 &&
		       ctx->local_ip6[2] == 0 && ctx->local_ip6[3] == bpf_htonl(2); /* fd77::2 */
	return 0;
}

SEC("sk_lookup/steer")
int steer(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	__u32 slot;
	long err;

	if (ctx->protocol != IPPROTO_UDP)
		return SK_PASS;
	if (ctx->local_port == DROP_PORT)
		return SK_DROP;
	if (is_steered_address(ctx))
		slot = SLOT_ADDRESS;
	else if (ctx->local_port >= RANGE_LO && ctx->local_port <= RANGE_HI)
		slot = SLOT_RANGE;
	else
		return SK_PASS;

	sk = bpf_map_lookup_elem(&steer_sockets, &slot);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
