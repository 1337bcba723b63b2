/* rule_loop: a firewall-style rule list walked in order, the "rule loops" class of issue 23 item 1.
 * One ARRAY value holds a count and up to 16 rules; the program walks them in a bounded loop (kept a
 * loop: unrolling is disabled) and the first rule whose address/mask and port range match the
 * destination decides: RULE_DROP drops, anything else is a slot of rule_socks to assign. No match,
 * or a non-IPv4 packet, passes. */
#include "../../tests/programs/common.h"

#define MAX_RULES 16
#define RULE_DROP 0xffffffffu

struct rule {
	__u32 addr;	/* network order, as ctx->local_ip4 */
	__u32 mask;	/* network order */
	__u16 port_lo;	/* host order, as ctx->local_port */
	__u16 port_hi;
	__u32 action;	/* RULE_DROP or a rule_socks slot */
};

struct ruleset {
	__u32 count;
	struct rule rules[MAX_RULES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ruleset);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} rule_socks SEC(".maps");

SEC("sk_lookup")
int rule_loop(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0, addr, port, i;
	struct ruleset *set;
	struct bpf_sock *sk;
	long err;

	if (ctx->family != AF_INET)
		return SK_PASS;
	set = bpf_map_lookup_elem(&rules, &zero);
	if (!set)
		return SK_PASS;
	addr = ctx->local_ip4;
	port = ctx->local_port;
#pragma clang loop unroll(disable)
	for (i = 0; i < MAX_RULES; i++) {
		struct rule *r = &set->rules[i];

		if (i >= set->count)
			break;
		if ((addr & r->mask) != r->addr || port < r->port_lo || port > r->port_hi)
			continue;
		if (r->action == RULE_DROP)
			return SK_DROP;
		sk = bpf_map_lookup_elem(&rule_socks, &r->action);
		if (!sk)
			return SK_DROP;
		err = bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
		return err ? SK_DROP : SK_PASS;
	}
	return SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
