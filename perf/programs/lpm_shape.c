/* LPM_TRIE lookup cost by the map's shape (perf's `lpm` verb, docs/perf.md "LPM_TRIE lookup cost by
 * shape"): one lookup per run of the next address of a list of probes, in an IPv4 (lpm4_*) or an IPv6
 * (lpm6_*) trie. Each run takes the cursor, advances it, reads the probe it points at and looks the
 * address up as a full-length key; the *_base programs do all of that but the LPM lookup, so that
 * program time minus its base time is one lookup. The verb fills `probes` with addresses under the
 * stored prefixes (random bits past each prefix), so successive runs walk different parts of the map. */
#include "../../tests/programs/common.h"

#define PROBES (1 << 16)

struct key4 {
	__u32 prefixlen;
	__u8 ip[4];
};

struct key6 {
	__u32 prefixlen;
	__u8 ip[16];
};

struct probe {
	__u8 ip[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1100000);
	__type(key, struct key4);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lpm4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1100000);
	__type(key, struct key6);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lpm6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROBES);
	__type(key, __u32);
	__type(value, struct probe);
} probes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cursor SEC(".maps");

static __always_inline struct probe *next_probe(void)
{
	__u32 zero = 0, i;
	__u32 *c = bpf_map_lookup_elem(&cursor, &zero);

	if (!c)
		return 0;
	i = *c;
	*c = (i + 1) & (PROBES - 1);
	return bpf_map_lookup_elem(&probes, &i);
}

SEC("sk_lookup")
int lpm4_lookup(struct bpf_sk_lookup *ctx)
{
	struct probe *p = next_probe();
	struct key4 key = { .prefixlen = 32 };
	__u32 *v;

	if (!p)
		return SK_DROP;
	__builtin_memcpy(key.ip, p->ip, 4);
	v = bpf_map_lookup_elem(&lpm4, &key);
	return v && (*v & 1) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int lpm4_base(struct bpf_sk_lookup *ctx)
{
	struct probe *p = next_probe();
	struct key4 key = { .prefixlen = 32 };

	if (!p)
		return SK_DROP;
	__builtin_memcpy(key.ip, p->ip, 4);
	return key.ip[3] & 1 ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int lpm6_lookup(struct bpf_sk_lookup *ctx)
{
	struct probe *p = next_probe();
	struct key6 key = { .prefixlen = 128 };
	__u32 *v;

	if (!p)
		return SK_DROP;
	__builtin_memcpy(key.ip, p->ip, 16);
	v = bpf_map_lookup_elem(&lpm6, &key);
	return v && (*v & 1) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup")
int lpm6_base(struct bpf_sk_lookup *ctx)
{
	struct probe *p = next_probe();
	struct key6 key = { .prefixlen = 128 };

	if (!p)
		return SK_DROP;
	__builtin_memcpy(key.ip, p->ip, 16);
	return key.ip[15] & 1 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
