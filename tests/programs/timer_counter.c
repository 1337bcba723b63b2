/* Arms a bpf_timer from a lookup; its callback runs later, outside any lookup, and counts in the map. */
#include "common.h"

#define CLOCK_MONOTONIC 1

struct elem {
	__u64 fired;
	__u64 armed;
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct elem);
} timers SEC(".maps");

static int timer_fired(void *map, __u32 *key, struct elem *e)
{
	__sync_fetch_and_add(&e->fired, 1);
	return 0;
}

SEC("sk_lookup")
int timer_counter(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	struct elem *e = bpf_map_lookup_elem(&timers, &key);

	if (!e)
		return SK_PASS;
	/* The first lookup makes the field a timer; later ones get -EBUSY and keep it. */
	bpf_timer_init(&e->timer, &timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&e->timer, timer_fired);
	/* Fires one millisecond after the latest lookup. */
	if (bpf_timer_start(&e->timer, 1000000, 0) == 0)
		__sync_fetch_and_add(&e->armed, 1);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
