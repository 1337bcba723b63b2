/* SK_LOOKUP programs of the kernel selftest test_sk_lookup.c, re-implemented for BpfJit's
 * scenario files from the behaviour described in docs (spec section 8.1). Constants live in
 * .rodata as in the original, so map keys are addressed through global data. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define EEXIST 17
#define ESOCKTNOSUPPORT 94

#define IP4(a, b, c, d) bpf_htonl((((__u32)(a)) << 24) | ((b) << 16) | ((c) << 8) | (d))
#define LSB(u, byte) (((__u8 *)&(u))[byte])
#define LSW(u, word) (((__u16 *)&(u))[word])

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} redir_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, int);
	__type(value, int);
} run_map SEC(".maps");

static const __u32 KEY_SERVER_A = 0;
static const __u32 KEY_SERVER_B = 1;
static const int PROG1 = 0;
static const int PROG2 = 1;
static const __u16 SRC_PORT = bpf_htons(8008);
static const __u32 SRC_IP4 = IP4(127, 0, 0, 2);
static const __u32 SRC_IP6[4] = { bpf_htonl(0xfd000000), 0, 0, bpf_htonl(2) };
static const __u16 DST_PORT = 7007;
static const __u32 DST_IP4 = IP4(127, 0, 0, 1);
static const __u32 DST_IP6[4] = { bpf_htonl(0xfd000000), 0, 0, bpf_htonl(1) };

SEC("sk_lookup")
int lookup_pass(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

SEC("sk_lookup")
int lookup_drop(struct bpf_sk_lookup *ctx)
{
	return SK_DROP;
}

SEC("sk_lookup")
int check_ifindex(struct bpf_sk_lookup *ctx)
{
	if (ctx->ingress_ifindex == 1)
		return SK_DROP;
	return SK_PASS;
}

static __always_inline int assign_key(struct bpf_sk_lookup *ctx, const __u32 *key, __u64 flags, int if_missing)
{
	struct bpf_sock *sk;
	long err;

	sk = bpf_map_lookup_elem(&redir_map, key);
	if (!sk)
		return if_missing;
	err = bpf_sk_assign(ctx, sk, flags);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int redir_port(struct bpf_sk_lookup *ctx)
{
	if (ctx->local_port != DST_PORT)
		return SK_PASS;
	return assign_key(ctx, &KEY_SERVER_A, 0, SK_PASS);
}

SEC("sk_lookup")
int redir_ip4(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != AF_INET)
		return SK_PASS;
	if (ctx->local_port != DST_PORT)
		return SK_PASS;
	if (ctx->local_ip4 != DST_IP4)
		return SK_PASS;
	return assign_key(ctx, &KEY_SERVER_A, 0, SK_PASS);
}

SEC("sk_lookup")
int redir_ip6(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != AF_INET6)
		return SK_PASS;
	if (ctx->local_port != DST_PORT)
		return SK_PASS;
	if (ctx->local_ip6[0] != DST_IP6[0] || ctx->local_ip6[1] != DST_IP6[1] ||
	    ctx->local_ip6[2] != DST_IP6[2] || ctx->local_ip6[3] != DST_IP6[3])
		return SK_PASS;
	return assign_key(ctx, &KEY_SERVER_A, 0, SK_PASS);
}

SEC("sk_lookup")
int select_sock_a(struct bpf_sk_lookup *ctx)
{
	return assign_key(ctx, &KEY_SERVER_A, 0, SK_PASS);
}

SEC("sk_lookup")
int select_sock_a_no_reuseport(struct bpf_sk_lookup *ctx)
{
	return assign_key(ctx, &KEY_SERVER_A, BPF_SK_LOOKUP_F_NO_REUSEPORT, SK_DROP);
}

SEC("sk_lookup")
int sk_assign_eexist(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	int ret = SK_PASS;
	long err;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_B);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return SK_DROP;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_A);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	if (err != -EEXIST)
		ret = SK_DROP;
	bpf_sk_release(sk);
	return ret;
}

SEC("sk_lookup")
int sk_assign_replace_flag(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	long err;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_A);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return SK_DROP;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_B);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_REPLACE);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int sk_assign_null(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	int ret = SK_DROP;

	if (bpf_sk_assign(ctx, NULL, 0))
		return SK_DROP;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_B);
	if (!sk)
		return SK_DROP;
	if (bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_REPLACE))
		goto out;
	if (ctx->sk != sk)
		goto out;
	if (bpf_sk_assign(ctx, NULL, 0) != -EEXIST)
		goto out;
	if (bpf_sk_assign(ctx, NULL, BPF_SK_LOOKUP_F_REPLACE))
		goto out;
	if (bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_REPLACE))
		goto out;
	ret = SK_PASS;
out:
	bpf_sk_release(sk);
	return ret;
}

static __always_inline int check_selected(struct bpf_sk_lookup *ctx, struct bpf_sock *sk)
{
	if (ctx->sk != sk)
		return 0;
	if (!ctx->sk)
		return 0;
	if (ctx->sk->family != AF_INET || ctx->sk->type != SOCK_STREAM || ctx->sk->state != BPF_TCP_LISTEN)
		return 0;
	return 1;
}

SEC("sk_lookup")
int access_ctx_sk(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	int ret = SK_DROP;

	/* Reading through ctx->sk needs a NULL check first. */
	if (ctx->sk && ctx->sk->family != AF_INET)
		return SK_DROP;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_A);
	if (!sk)
		return SK_DROP;
	if (bpf_sk_assign(ctx, sk, 0))
		goto out_a;
	if (!check_selected(ctx, sk))
		goto out_a;
	if (bpf_sk_assign(ctx, NULL, BPF_SK_LOOKUP_F_REPLACE))
		goto out_a;
	if (ctx->sk)
		goto out_a;
	bpf_sk_release(sk);

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_B);
	if (!sk)
		return SK_DROP;
	if (bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_REPLACE))
		goto out_a;
	if (!check_selected(ctx, sk))
		goto out_a;
	ret = SK_PASS;
out_a:
	bpf_sk_release(sk);
	return ret;
}

/* Every 1- and 2-byte load at the low offsets of each field; the 2-byte loads at +2 of family,
 * protocol and local_port are left out, as in the kernel test. */
SEC("sk_lookup")
int ctx_narrow_access(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	__u32 val_u32;
	int v4;

	v4 = LSB(ctx->family, 0) == AF_INET;

	if (LSB(ctx->family, 0) != (v4 ? AF_INET : AF_INET6) || LSB(ctx->family, 1) != 0 ||
	    LSB(ctx->family, 2) != 0 || LSB(ctx->family, 3) != 0)
		return SK_DROP;
	if (LSW(ctx->family, 0) != (v4 ? AF_INET : AF_INET6))
		return SK_DROP;

	if (LSB(ctx->protocol, 0) != IPPROTO_TCP || LSB(ctx->protocol, 1) != 0 ||
	    LSB(ctx->protocol, 2) != 0 || LSB(ctx->protocol, 3) != 0)
		return SK_DROP;
	if (LSW(ctx->protocol, 0) != IPPROTO_TCP)
		return SK_DROP;

	if (v4) {
		if (LSB(ctx->remote_ip4, 0) != LSB(SRC_IP4, 0) || LSB(ctx->remote_ip4, 1) != LSB(SRC_IP4, 1) ||
		    LSB(ctx->remote_ip4, 2) != LSB(SRC_IP4, 2) || LSB(ctx->remote_ip4, 3) != LSB(SRC_IP4, 3))
			return SK_DROP;
		if (LSW(ctx->remote_ip4, 0) != LSW(SRC_IP4, 0) || LSW(ctx->remote_ip4, 1) != LSW(SRC_IP4, 1))
			return SK_DROP;
		if (LSB(ctx->local_ip4, 0) != LSB(DST_IP4, 0) || LSB(ctx->local_ip4, 1) != LSB(DST_IP4, 1) ||
		    LSB(ctx->local_ip4, 2) != LSB(DST_IP4, 2) || LSB(ctx->local_ip4, 3) != LSB(DST_IP4, 3))
			return SK_DROP;
		if (LSW(ctx->local_ip4, 0) != LSW(DST_IP4, 0) || LSW(ctx->local_ip4, 1) != LSW(DST_IP4, 1))
			return SK_DROP;
		/* IPv6 fields read 0 for an IPv4 lookup. */
		if (LSB(ctx->remote_ip6[0], 0) || LSW(ctx->remote_ip6[3], 1) || ctx->local_ip6[1] || LSB(ctx->local_ip6[3], 3))
			return SK_DROP;
	} else {
		if (LSB(ctx->remote_ip6[0], 0) != LSB(SRC_IP6[0], 0) || LSB(ctx->remote_ip6[0], 1) != LSB(SRC_IP6[0], 1) ||
		    LSB(ctx->remote_ip6[3], 2) != LSB(SRC_IP6[3], 2) || LSB(ctx->remote_ip6[3], 3) != LSB(SRC_IP6[3], 3))
			return SK_DROP;
		if (LSW(ctx->remote_ip6[0], 0) != LSW(SRC_IP6[0], 0) || LSW(ctx->remote_ip6[3], 1) != LSW(SRC_IP6[3], 1))
			return SK_DROP;
		if (LSB(ctx->local_ip6[0], 0) != LSB(DST_IP6[0], 0) || LSB(ctx->local_ip6[3], 3) != LSB(DST_IP6[3], 3))
			return SK_DROP;
		if (LSW(ctx->local_ip6[0], 0) != LSW(DST_IP6[0], 0) || LSW(ctx->local_ip6[3], 1) != LSW(DST_IP6[3], 1))
			return SK_DROP;
		/* IPv4 fields read 0 for an IPv6 lookup. */
		if (LSB(ctx->remote_ip4, 0) || LSW(ctx->remote_ip4, 1) || ctx->local_ip4)
			return SK_DROP;
	}

	if (LSB(ctx->remote_port, 0) != ((SRC_PORT >> 0) & 0xff) || LSB(ctx->remote_port, 1) != ((SRC_PORT >> 8) & 0xff))
		return SK_DROP;
	if (LSW(ctx->remote_port, 0) != SRC_PORT)
		return SK_DROP;
	/* A 4-byte load of remote_port reads the be16 port zero-extended. */
	val_u32 = *(__u32 *)&ctx->remote_port;
	if (val_u32 != SRC_PORT)
		return SK_DROP;

	if (LSB(ctx->local_port, 0) != ((DST_PORT >> 0) & 0xff) || LSB(ctx->local_port, 1) != ((DST_PORT >> 8) & 0xff) ||
	    LSB(ctx->local_port, 2) != 0 || LSB(ctx->local_port, 3) != 0)
		return SK_DROP;
	if (LSW(ctx->local_port, 0) != DST_PORT)
		return SK_DROP;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_B);
	if (!sk)
		return SK_DROP;
	val_u32 = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return val_u32 ? SK_DROP : SK_PASS;
}

SEC("sk_lookup")
int sk_assign_esocknosupport(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	int ret = SK_DROP;
	long err;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_A);
	if (!sk)
		return SK_DROP;
	err = bpf_sk_assign(ctx, sk, 0);
	if (err == -ESOCKTNOSUPPORT)
		ret = SK_PASS; /* the regular lookup continues */
	bpf_sk_release(sk);
	return ret;
}

static __always_inline void mark_ran(const int *which)
{
	int done = 1;

	bpf_map_update_elem(&run_map, which, &done, BPF_ANY);
}

SEC("sk_lookup")
int multi_prog_pass1(struct bpf_sk_lookup *ctx)
{
	mark_ran(&PROG1);
	return SK_PASS;
}

SEC("sk_lookup")
int multi_prog_pass2(struct bpf_sk_lookup *ctx)
{
	mark_ran(&PROG2);
	return SK_PASS;
}

SEC("sk_lookup")
int multi_prog_drop1(struct bpf_sk_lookup *ctx)
{
	mark_ran(&PROG1);
	return SK_DROP;
}

SEC("sk_lookup")
int multi_prog_drop2(struct bpf_sk_lookup *ctx)
{
	mark_ran(&PROG2);
	return SK_DROP;
}

static __always_inline int select_server_a(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;

	sk = bpf_map_lookup_elem(&redir_map, &KEY_SERVER_A);
	if (sk) {
		bpf_sk_assign(ctx, sk, 0); /* errors are ignored */
		bpf_sk_release(sk);
	}
	return SK_PASS;
}

SEC("sk_lookup")
int multi_prog_redir1(struct bpf_sk_lookup *ctx)
{
	select_server_a(ctx);
	mark_ran(&PROG1);
	return SK_PASS;
}

SEC("sk_lookup")
int multi_prog_redir2(struct bpf_sk_lookup *ctx)
{
	select_server_a(ctx);
	mark_ran(&PROG2);
	return SK_PASS;
}

/* The selftest's SK_REUSEPORT programs, run by a reuseport group when a lookup lands on one of its
 * members: keep the kernel's pick, refuse the packet, or pick server B from redir_map. */
SEC("sk_reuseport")
int reuseport_pass(struct sk_reuseport_md *ctx)
{
	return SK_PASS;
}

SEC("sk_reuseport")
int reuseport_drop(struct sk_reuseport_md *ctx)
{
	return SK_DROP;
}

SEC("sk_reuseport")
int select_sock_b(struct sk_reuseport_md *ctx)
{
	__u32 key = KEY_SERVER_B;

	/* Any error (an empty slot, a socket outside the group) drops the packet. */
	if (bpf_sk_select_reuseport(ctx, &redir_map, &key, 0))
		return SK_DROP;
	return SK_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
