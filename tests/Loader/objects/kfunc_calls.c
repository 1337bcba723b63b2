/* Kernel function (kfunc) calls: externs in .ksyms. BpfJit loads the object and judges each program:
 * the ones calling kfuncs are rejected by the verifier, the plain one is verified as usual. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task_struct;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern struct task_struct *bpf_task_from_pid(int pid) __ksym;

/* Linux 6.18 allows the common kfuncs for SK_LOOKUP. */
SEC("sk_lookup") int rcu_section(struct bpf_sk_lookup *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return SK_PASS;
}

/* A kfunc registered for tracing programs only: Linux refuses it for SK_LOOKUP. */
SEC("sk_lookup") int task_lookup(struct bpf_sk_lookup *ctx)
{
	return bpf_task_from_pid(1) ? SK_DROP : SK_PASS;
}

SEC("sk_lookup") int plain(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port == 22 ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
