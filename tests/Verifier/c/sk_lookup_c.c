// C programs for the verifier corpus, compiled by build.sh (clang -target bpf -O2 -mcpu=v3).
// Each SEC("sk_lookup/NAME") is extracted to NAME.bin; the first line comment of each function
// says what the verifier must answer: "expect: accept" or "expect: reject SUBSTRING".
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define SK_DROP 0
#define SK_PASS 1

static long (*bpf_sk_assign)(void *ctx, void *sk, __u64 flags) = (void *)124;
static long (*bpf_sk_release)(void *sk) = (void *)86;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;

// expect: accept
SEC("sk_lookup/check_ifindex")
int check_ifindex(struct bpf_sk_lookup *ctx)
{
    if (ctx->ingress_ifindex == 1)
        return SK_DROP;
    return SK_PASS;
}

// expect: accept
SEC("sk_lookup/narrow_loads")
int narrow_loads(struct bpf_sk_lookup *ctx)
{
    __u8 *p = (__u8 *)&ctx->local_ip4;
    __u16 *q = (__u16 *)&ctx->remote_ip6[1];
    if (p[0] == 127 && p[3] == 1 && q[1] == 0 && ctx->protocol == 6)
        return SK_PASS;
    return SK_DROP;
}

// expect: accept
SEC("sk_lookup/v6_match")
int v6_match(struct bpf_sk_lookup *ctx)
{
    if (ctx->family != 10)
        return SK_PASS;
    if (ctx->local_ip6[0] != __builtin_bswap32(0xfd000000) || ctx->local_ip6[1] || ctx->local_ip6[2] ||
        ctx->local_ip6[3] != __builtin_bswap32(1))
        return SK_PASS;
    return ctx->local_port == 7007 ? SK_DROP : SK_PASS;
}

// expect: accept
SEC("sk_lookup/reassign_ctx_sk")
int reassign_ctx_sk(struct bpf_sk_lookup *ctx)
{
    struct bpf_sock *sk = ctx->sk;
    if (sk && sk->family == 2 && sk->state == 10)
        return bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_REPLACE) == 0 ? SK_PASS : SK_DROP;
    return bpf_sk_assign(ctx, 0, BPF_SK_LOOKUP_F_REPLACE) == 0 ? SK_PASS : SK_DROP;
}

// expect: accept
SEC("sk_lookup/bounded_loop")
int bounded_loop(struct bpf_sk_lookup *ctx)
{
    __u32 sum = 0;
    for (int i = 0; i < 4; i++)
        sum += ctx->local_ip6[i];
    __u8 buf[16] = {};
    __u32 n = bpf_get_prandom_u32() & 15;
    buf[n] = 1;
    return (sum + buf[3]) & 1;
}

// expect: reject should have been in [0, 1]
SEC("sk_lookup/returns_port")
int returns_port(struct bpf_sk_lookup *ctx)
{
    return ctx->local_port;
}

// expect: reject invalid bpf_context access
SEC("sk_lookup/writes_ctx")
int writes_ctx(struct bpf_sk_lookup *ctx)
{
    ctx->local_port = 80;
    return SK_PASS;
}

// expect: reject R1 must be referenced when passed to release function
SEC("sk_lookup/releases_ctx_sk")
int releases_ctx_sk(struct bpf_sk_lookup *ctx)
{
    struct bpf_sock *sk = ctx->sk;
    if (sk)
        bpf_sk_release(sk);
    return SK_PASS;
}

// expect: reject invalid mem access 'sock_or_null'
SEC("sk_lookup/unchecked_sk")
int unchecked_sk(struct bpf_sk_lookup *ctx)
{
    return ctx->sk->family == 2;
}

char _license[] SEC("license") = "GPL";
