/* __kptr and __kptr_untrusted fields in a map value (issue 19): loads, stores and bpf_kptr_xchg, each program one case.
 * BpfJit and the live kernel (tests/Verifier/KptrFieldTests.cs) must accept and refuse the same ones with the same
 * messages. An SK_LOOKUP program can acquire no kernel object, so no bpf_kptr_xchg out of a referenced field passes:
 * what comes out must be released, and only another exchange takes it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __kptr __attribute__((btf_type_tag("kptr")))
#define __kptr_untrusted __attribute__((btf_type_tag("kptr_untrusted")))

/* Declared, not defined: clang 14 drops a btf_type_tag whose pointee is a complete struct, so the fields point to a
 * forward declaration, and the program reads the task through the CO-RE flavour task_struct___l. */
struct task_struct;
struct task_struct___l {
	int pid;
} __attribute__((preserve_access_index));

struct value {
	long x;                                   /* off 0 */
	struct task_struct __kptr *t;             /* off 8: referenced */
	struct task_struct __kptr_untrusted *u;   /* off 16: unreferenced */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, int);
	__type(value, struct value);
} kptrs SEC(".maps");

static __always_inline struct value *slot(int k)
{
	return bpf_map_lookup_elem(&kptrs, &k);
}

/* Accepted: a referenced kptr loads as rcu_ptr_or_null_task_struct (non-sleepable programs are in an RCU section). */
SEC("sk_lookup") int load_ref(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	struct task_struct *t = v->t;
	if (!t) return SK_PASS;
	return ((struct task_struct___l *)t)->pid ? SK_PASS : SK_DROP;
}

/* Accepted: the current task stored in an unreferenced kptr, loaded back (untrusted_ptr_or_null_) and read; x = its pid. */
SEC("sk_lookup") int store_current(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	v->u = bpf_get_current_task_btf();
	asm volatile("" ::: "memory");   /* read the field back */
	struct task_struct *t = v->u;
	if (!t) return SK_DROP;
	v->x = ((struct task_struct___l *)t)->pid;
	return SK_PASS;
}

/* Accepted: NULL stored in an unreferenced kptr. */
SEC("sk_lookup") int store_null_untrusted(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(1);
	if (!v) return SK_DROP;
	v->u = 0;
	return SK_PASS;
}

/* Refused: store to referenced kptr disallowed. */
SEC("sk_lookup") int store_null_ref(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	v->t = 0;
	return SK_PASS;
}

/* Refused: a scalar is no kernel pointer. */
SEC("sk_lookup") int store_scalar(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	v->u = (struct task_struct *)(long)ctx->local_port;
	return SK_PASS;
}

/* Refused: what bpf_kptr_xchg returns is a reference the program must release (Unreleased reference). */
SEC("sk_lookup") int xchg_null(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	struct task_struct *t = bpf_kptr_xchg(&v->t, 0);
	return t ? SK_DROP : SK_PASS;
}

/* Refused: only a referenced kptr can be exchanged. */
SEC("sk_lookup") int xchg_untrusted(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return bpf_kptr_xchg(&v->u, 0) ? SK_DROP : SK_PASS;
}

/* Refused: offset 0 holds no kptr. */
SEC("sk_lookup") int xchg_not_kptr(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return bpf_kptr_xchg((void *)&v->x, 0) ? SK_DROP : SK_PASS;
}

/* Refused: the current task is no reference the program owns. */
SEC("sk_lookup") int xchg_unowned(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return bpf_kptr_xchg(&v->t, bpf_get_current_task_btf()) ? SK_DROP : SK_PASS;
}

/* Refused: a kptr is read whole (BPF_DW). */
SEC("sk_lookup") int read_half(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return *(volatile unsigned int *)&v->u ? SK_DROP : SK_PASS;
}

/* Refused: an 8-byte read across the kptr at 16 (off 12). */
SEC("sk_lookup") int read_misaligned(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return *(volatile unsigned long *)((char *)v + 12) ? SK_DROP : SK_PASS;
}

/* Refused: a helper may not read the value's kptrs. */
SEC("sk_lookup") int helper_reads_kptr(struct bpf_sk_lookup *ctx)
{
	int k = 1;
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return bpf_map_update_elem(&kptrs, &k, v, 0) ? SK_DROP : SK_PASS;
}

/* Refused: the destination must be a map value. */
SEC("sk_lookup") int xchg_ctx(struct bpf_sk_lookup *ctx)
{
	return bpf_kptr_xchg(ctx, 0) ? SK_DROP : SK_PASS;
}

/* Refused: what goes in must be a kernel pointer of the field's type. */
SEC("sk_lookup") int xchg_ctx_value(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return bpf_kptr_xchg(&v->t, (void *)ctx) ? SK_DROP : SK_PASS;
}

/* Refused: the reference taken out goes back in, and the register that held it is no pointer any more (nor would the
 * second exchange's reference be released). */
SEC("sk_lookup") int xchg_back(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	struct task_struct *t = bpf_kptr_xchg(&v->t, 0);
	if (!t) return SK_PASS;
	struct task_struct *old = bpf_kptr_xchg(&v->t, t);
	v->x = ((struct task_struct___l *)t)->pid;
	return old ? SK_DROP : SK_PASS;
}

/* Accepted: an unreferenced kptr takes what a load of either kptr gives (maybe-NULL, RCU or untrusted). */
SEC("sk_lookup") int copy_into_untrusted(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	struct value *w = slot(1);
	if (!v || !w) return SK_DROP;
	w->u = v->t;
	v->u = w->u;
	return SK_PASS;
}

/* Refused: a variable offset that may reach a kptr. */
SEC("sk_lookup") int read_var_off(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	return *(volatile unsigned long *)((char *)v + (ctx->local_port & 8)) ? SK_DROP : SK_PASS;
}

/* Refused: an atomic on a kptr. */
SEC("sk_lookup") int atomic_add(struct bpf_sk_lookup *ctx)
{
	struct value *v = slot(0);
	if (!v) return SK_DROP;
	__sync_fetch_and_add((long *)&v->u, 1);
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
