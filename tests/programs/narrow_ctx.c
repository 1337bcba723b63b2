/* Every narrow context load: 1-, 2- and 4-byte loads of every field of struct bpf_sk_lookup, folded
 * into a checksum. The result is reduced to SK_PASS/SK_DROP by its parity. */
#include "common.h"

#define LOAD(type, off) (*(volatile type *)((void *)ctx + (off)))

/* All 1-, 2- and 4-byte loads of a 4-byte field starting at off. */
#define FIELD4(off)                                                              \
	(LOAD(__u8, (off)) + LOAD(__u8, (off) + 1) * 3 + LOAD(__u8, (off) + 2) * 5 + \
	 LOAD(__u8, (off) + 3) * 7 + LOAD(__u16, (off)) * 11 + LOAD(__u16, (off) + 2) * 13 + \
	 LOAD(__u32, (off)) * 17)

SEC("sk_lookup")
int narrow_ctx(struct bpf_sk_lookup *ctx)
{
	__u64 sum = 0;

	sum += FIELD4(8);   /* family */
	sum ^= FIELD4(12);  /* protocol */
	sum += FIELD4(16);  /* remote_ip4 */
	sum ^= FIELD4(20);  /* remote_ip6[0] */
	sum += FIELD4(24);  /* remote_ip6[1] */
	sum ^= FIELD4(28);  /* remote_ip6[2] */
	sum += FIELD4(32);  /* remote_ip6[3] */
	/* remote_port: 1-byte at +0/+1, 2-byte at +0, the 4-byte backward-compatible load, and the
	 * padding after it (2-byte at +2, 1-byte at +2/+3). */
	sum ^= LOAD(__u8, 36) + LOAD(__u8, 37) * 3 + LOAD(__u16, 36) * 5 + LOAD(__u32, 36) * 7 +
	       LOAD(__u16, 38) * 11 + LOAD(__u8, 38) * 13 + LOAD(__u8, 39) * 17;
	sum += FIELD4(40);  /* local_ip4 */
	sum ^= FIELD4(44);  /* local_ip6[0] */
	sum += FIELD4(48);  /* local_ip6[1] */
	sum ^= FIELD4(52);  /* local_ip6[2] */
	sum += FIELD4(56);  /* local_ip6[3] */
	sum ^= FIELD4(60);  /* local_port */
	sum += FIELD4(64);  /* ingress_ifindex */

	return (sum ^ (sum >> 32)) & 1 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
