// The tubular dispatcher (cloudflare/tubular ebpf/inet-kern.c, as described in sk-lookup.md 9.1),
// written without libbpf headers. build.sh compiles it and writes dispatcher.maps: one line
// "INSN MAP" per map reference, which the test turns into ld_imm64 src=5 map indexes.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

struct addr {
    __u32 prefixlen;
    __u8 protocol;
    __u16 port;
    __u32 ip[4];
} __attribute__((packed));

struct binding {
    __u32 id;
    __u32 prefixlen;
};

struct destination_metrics {
    __u64 lookups;
    __u64 misses;
    __u64 errors__bad_socket;
};

// Map symbols only: the test supplies their MapInfo (and creates real maps for the kernel).
int sockets SEC("maps");
int bindings SEC("maps");
int destination_metrics SEC("maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_sk_assign)(void *ctx, void *sk, __u64 flags) = (void *)124;
static long (*bpf_sk_release)(void *sk) = (void *)86;

// expect: accept
SEC("sk_lookup/dispatcher")
int dispatcher(struct bpf_sk_lookup *ctx)
{
    struct addr key = {};
    key.prefixlen = (sizeof(struct addr) - 4) * 8;
    key.protocol = ctx->protocol;
    key.port = ctx->local_port;
    if (ctx->family == 2) {
        key.ip[2] = __builtin_bswap32(0x0000ffff);
        key.ip[3] = ctx->local_ip4;
        // Keeps clang from merging the two branches' ctx loads into one load through a
        // computed ctx pointer, which every verifier rejects (see dispatcher_merged_ctx below).
        asm volatile("" ::: "memory");
    } else if (ctx->family == 10) {
        key.ip[0] = ctx->local_ip6[0];
        key.ip[1] = ctx->local_ip6[1];
        key.ip[2] = ctx->local_ip6[2];
        key.ip[3] = ctx->local_ip6[3];
        asm volatile("" ::: "memory");
    }
    struct binding *bind = bpf_map_lookup_elem(&bindings, &key);
    key.port = 0;
    struct binding *wildcard = bpf_map_lookup_elem(&bindings, &key);
    if (bind && wildcard) {
        if (wildcard->prefixlen > bind->prefixlen)
            bind = wildcard;
    } else if (!bind) {
        bind = wildcard;
    }
    if (!bind)
        return 1;
    struct destination_metrics *metrics = bpf_map_lookup_elem(&destination_metrics, &bind->id);
    if (!metrics)
        return 0;
    metrics->lookups++;
    struct bpf_sock *sk = bpf_map_lookup_elem(&sockets, &bind->id);
    if (!sk) {
        metrics->misses++;
        return 0;
    }
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    if (err) {
        metrics->errors__bad_socket++;
        return 0;
    }
    return 1;
}

// expect: reject dereference of modified ctx ptr R1 off=40 disallowed
SEC("sk_lookup/dispatcher_merged_ctx")
int dispatcher_merged_ctx(struct bpf_sk_lookup *ctx)
{
    struct addr key = {};
    key.prefixlen = (sizeof(struct addr) - 4) * 8;
    key.protocol = ctx->protocol;
    key.port = ctx->local_port;
    if (ctx->family == 2) {
        key.ip[2] = __builtin_bswap32(0x0000ffff);
        key.ip[3] = ctx->local_ip4;
    } else if (ctx->family == 10) {
        key.ip[0] = ctx->local_ip6[0];
        key.ip[1] = ctx->local_ip6[1];
        key.ip[2] = ctx->local_ip6[2];
        key.ip[3] = ctx->local_ip6[3];
    }
    struct binding *bind = bpf_map_lookup_elem(&bindings, &key);
    return bind ? 1 : 0;
}

// expect: reject Unreleased reference
SEC("sk_lookup/dispatcher_leak")
int dispatcher_leak(struct bpf_sk_lookup *ctx)
{
    __u32 id = ctx->local_port;
    struct bpf_sock *sk = bpf_map_lookup_elem(&sockets, &id);
    if (!sk)
        return 0;
    return bpf_sk_assign(ctx, sk, 0) == 0;
}

char _license[] SEC("license") = "GPL";
