/* Drains a user ring buffer that userspace fills: each sample is a port to count lookups for. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} commands SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

struct command {
	__u64 value;
};

static long add_sample(const struct bpf_dynptr *sample, void *ctx)
{
	struct command cmd;
	__u64 *sum = ctx;

	if (bpf_dynptr_read(&cmd, sizeof(cmd), sample, 0, 0))
		return 1;
	*sum += cmd.value;
	return 0;
}

SEC("sk_lookup")
int user_ringbuf_drain(struct bpf_sk_lookup *ctx)
{
	__u32 samples_key = 0, sum_key = 1;
	__u64 sum = 0, *total;
	long n;

	n = bpf_user_ringbuf_drain(&commands, add_sample, &sum, 0);
	if (n <= 0)
		return SK_PASS;
	total = bpf_map_lookup_elem(&totals, &samples_key);
	if (total)
		__sync_fetch_and_add(total, n);
	total = bpf_map_lookup_elem(&totals, &sum_key);
	if (total)
		__sync_fetch_and_add(total, sum);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
