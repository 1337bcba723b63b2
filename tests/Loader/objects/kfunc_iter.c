/* Open-coded numeric iterators (bpf_for, bpf_repeat) inside an RCU read section: kfuncs BpfJit runs.
 * libbpf-dev here has no bpf_for, so the kfuncs and the two loop macros are declared below, shaped like
 * libbpf's: the iterator lives on the stack, next() yields a pointer to the value or NULL, and the
 * cleanup attribute destroys the iterator when the loop's scope ends. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_iter_num { __u64 __opaque[1]; } __attribute__((aligned(8)));
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

/* for (i = start; i < end; i++), with i read back from the iterator and checked against the range. */
#define my_bpf_for(i, start, end)                                                              \
	for (struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))), \
	     *___once __attribute__((unused)) =                                                  \
		     (bpf_iter_num_new(&___it, (start), (end)), (void)bpf_iter_num_destroy, (void *)0); \
	     ({ int *___v = bpf_iter_num_next(&___it);                                            \
		___v && ((i) = *___v, (i) >= (start) && (i) < (end)); });)

/* Runs the body n times. */
#define my_bpf_repeat(n)                                                                       \
	for (struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))), \
	     *___once __attribute__((unused)) =                                                  \
		     (bpf_iter_num_new(&___it, 0, (n)), (void)bpf_iter_num_destroy, (void *)0);     \
	     bpf_iter_num_next(&___it);)

/* Where the program keeps its sum: the verdict is read back from the map value, which the verifier does not
 * track, so it need not know the sum exactly and the loops converge instead of unrolling. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sums SEC(".maps");

/* sum = 0 + 1 + ... + (n - 1) with bpf_for, plus n with bpf_repeat, n = local_port % 32; SK_DROP when it is odd. */
SEC("sk_lookup") int iter_sum(struct bpf_sk_lookup *ctx)
{
	int i, n = ctx->local_port & 31;
	__u32 sum = 0, zero = 0, *slot;

	slot = bpf_map_lookup_elem(&sums, &zero);
	if (!slot)
		return SK_PASS;
	bpf_rcu_read_lock();
	my_bpf_for(i, 0, n)
		sum += i;
	my_bpf_repeat(n)
		sum++;
	bpf_rcu_read_unlock();
	*slot = sum;
	return *(volatile __u32 *)slot & 1 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
