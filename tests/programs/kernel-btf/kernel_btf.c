/* Fields of kernel structs read through BTF pointers, the libbpf CO-RE way: the program declares only the members it
 * reads (preserve_access_index), and the loader relocates them against the target's layout (BpfJit: its bundled
 * kernel BTF, tools/kernel-btf). Passes a lookup only when the current task has a pid and, for a selected TCP socket,
 * the socket's own port and family read through bpf_skc_to_tcp_sock match the uapi ctx->sk view. */
#include "common.h"

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
} __attribute__((preserve_access_index));

struct sock_common {
	unsigned short skc_num;
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	unsigned short sk_protocol;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));

struct tcp_sock {
	struct inet_connection_sock inet_conn;
} __attribute__((preserve_access_index));

static struct tcp_sock *(*skc_to_tcp_sock)(void *sk) = (void *)BPF_FUNC_skc_to_tcp_sock;
static struct task_struct *(*current_task_btf)(void) = (void *)BPF_FUNC_get_current_task_btf;

SEC("sk_lookup")
int kernel_btf(struct bpf_sk_lookup *ctx)
{
	struct task_struct *task = current_task_btf();
	struct bpf_sock *sk = ctx->sk;
	struct tcp_sock *tp;

	if (task->pid == 0 || task->tgid == 0 || task->comm[0] == 0)
		return SK_DROP;
	if (!sk)
		return SK_PASS;
	tp = skc_to_tcp_sock(sk);
	if (!tp)
		return SK_PASS;
	if (tp->inet_conn.icsk_inet.sk.__sk_common.skc_num != sk->src_port)
		return SK_DROP;
	if (tp->inet_conn.icsk_inet.sk.__sk_common.skc_family != sk->family)
		return SK_DROP;
	if (tp->inet_conn.icsk_inet.sk.sk_protocol != IPPROTO_TCP)
		return SK_DROP;
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
