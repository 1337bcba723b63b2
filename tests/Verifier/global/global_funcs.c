/* Global (non-static) functions: the kernel verifies each one once, on its own, from its BTF
 * prototype, and checks every call against that prototype. Each program's expected verdict and
 * message (checked against Linux 6.18) is in GlobalFunctionTests.cs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __noinline __attribute__((noinline))
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#define __arg_nonnull __attribute__((btf_decl_tag("arg:nonnull")))

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} vals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} hvals SEC(".maps");

const volatile __u32 limit = 1000;

struct big {
	__u64 words[8];
};

/* A scalar argument: the callee sees an unknown scalar, the caller an unknown result. */
__noinline int port_is_low(__u32 port)
{
	return port < 1024;
}

/* The context, typed by BTF as struct bpf_sk_lookup *. */
__noinline int ctx_port_is_low(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port < 1024;
}

/* The context through a void * tagged arg:ctx. */
__noinline int tagged_ctx_port(void *ctx __arg_ctx)
{
	return ((struct bpf_sk_lookup *)ctx)->local_port < 1024;
}

/* A pointer to 4 bytes that may be NULL: dereferenced without a check. */
__noinline int read_unchecked(__u32 *p)
{
	return *p < 1024;
}

/* The same, checked. */
__noinline int read_checked(__u32 *p)
{
	return p ? *p < 1024 : 0;
}

/* The same, tagged arg:nonnull: no check needed, callers must pass memory. */
__noinline int read_nonnull(__u32 *p __arg_nonnull)
{
	return *p < 1024;
}

/* 64 bytes of memory. */
__noinline int read_big(struct big *b)
{
	return b ? b->words[7] < 1024 : 0;
}

/* Writes through its argument. */
__noinline int bump(__u32 *p)
{
	if (!p)
		return 0;
	*p += 1;
	return 1;
}


/* A chain of eight global functions under the program: nine frames in all. */
__noinline int chain8(__u32 x) { return x < 1024; }
__noinline int chain7(__u32 x) { return chain8(x + 1); }
__noinline int chain6(__u32 x) { return chain7(x + 1); }
__noinline int chain5(__u32 x) { return chain6(x + 1); }
__noinline int chain4(__u32 x) { return chain5(x + 1); }
__noinline int chain3(__u32 x) { return chain4(x + 1); }
__noinline int chain2(__u32 x) { return chain3(x + 1); }
__noinline int chain1(__u32 x) { return chain2(x + 1); }

/* Seven of them: eight frames, the most the kernel allows. */
__noinline int short7(__u32 x) { return x < 1024; }
__noinline int short6(__u32 x) { return short7(x + 1); }
__noinline int short5(__u32 x) { return short6(x + 1); }
__noinline int short4(__u32 x) { return short5(x + 1); }
__noinline int short3(__u32 x) { return short4(x + 1); }
__noinline int short2(__u32 x) { return short3(x + 1); }
__noinline int short1(__u32 x) { return short2(x + 1); }

/* Mutual recursion: each verified alone, the call graph is still unbounded. */
__noinline int ping(__u32 x);
__noinline int pong(__u32 x) { return x ? ping(x - 1) : 0; }
__noinline int ping(__u32 x) { return x ? pong(x - 1) : 1; }

/* A pointer result: global functions must return a scalar. */
__noinline __u32 *pick(__u32 *p, __u32 *q) { return *p > *q ? p : q; }

SEC("sk_lookup/scalar_arg")
int scalar_arg(struct bpf_sk_lookup *ctx)
{
	return port_is_low(ctx->local_port) ? SK_PASS : SK_DROP;
}

/* The callee's result is an unknown scalar to the caller: returning it is out of [0, 1]. */
SEC("sk_lookup/result_unknown")
int result_unknown(struct bpf_sk_lookup *ctx)
{
	return port_is_low(ctx->local_port);
}

SEC("sk_lookup/ctx_arg")
int ctx_arg(struct bpf_sk_lookup *ctx)
{
	return ctx_port_is_low(ctx) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/tagged_ctx_arg")
int tagged_ctx_arg(struct bpf_sk_lookup *ctx)
{
	return tagged_ctx_port(ctx) ? SK_PASS : SK_DROP;
}

/* A stack copy is not the context. */
SEC("sk_lookup/ctx_arg_from_stack")
int ctx_arg_from_stack(struct bpf_sk_lookup *ctx)
{
	struct bpf_sk_lookup copy = {};

	copy.local_port = ctx->local_port;
	return ctx_port_is_low(&copy) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/pointer_as_scalar")
int pointer_as_scalar(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;

	return port_is_low((__u32)(unsigned long)&port) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/unchecked_deref")
int unchecked_deref(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;

	return read_unchecked(&port) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/checked_deref")
int checked_deref(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;

	return read_checked(&port) && read_checked(0) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/nonnull_stack")
int nonnull_stack(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port;

	return read_nonnull(&port) ? SK_PASS : SK_DROP;
}

/* A lookup result that may be NULL, passed for arg:nonnull. */
SEC("sk_lookup/nonnull_maybe_null")
int nonnull_maybe_null(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u32 *v = bpf_map_lookup_elem(&hvals, &key);

	return read_nonnull(v) ? SK_PASS : SK_DROP;
}

/* The same result, NULL-checked first. */
SEC("sk_lookup/nonnull_map_value")
int nonnull_map_value(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u32 *v = bpf_map_lookup_elem(&vals, &key);

	if (!v)
		return SK_DROP;
	return read_nonnull(v) ? SK_PASS : SK_DROP;
}

/* A nullable argument may get the lookup result unchecked. */
SEC("sk_lookup/nullable_map_value")
int nullable_map_value(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;

	return bump(bpf_map_lookup_elem(&hvals, &key)) ? SK_PASS : SK_DROP;
}

/* 4 bytes of map value for a 64-byte argument. */
SEC("sk_lookup/map_value_too_small")
int map_value_too_small(struct bpf_sk_lookup *ctx)
{
	__u32 key = 0;
	__u32 *v = bpf_map_lookup_elem(&vals, &key);

	if (!v)
		return SK_DROP;
	return read_big((struct big *)v) ? SK_PASS : SK_DROP;
}

/* The callee may write: read-only global data is refused. */
SEC("sk_lookup/readonly_value")
int readonly_value(struct bpf_sk_lookup *ctx)
{
	return bump((__u32 *)&limit) ? SK_PASS : SK_DROP;
}

/* The context is not memory a callee may read as bytes. */
SEC("sk_lookup/ctx_as_memory")
int ctx_as_memory(struct bpf_sk_lookup *ctx)
{
	return read_checked((__u32 *)ctx) ? SK_PASS : SK_DROP;
}

/* NULL for arg:nonnull. */
SEC("sk_lookup/nonnull_null")
int nonnull_null(struct bpf_sk_lookup *ctx)
{
	return read_nonnull(0) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/nine_frames")
int nine_frames(struct bpf_sk_lookup *ctx)
{
	return chain1(ctx->local_port) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/eight_frames")
int eight_frames(struct bpf_sk_lookup *ctx)
{
	return short1(ctx->local_port) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/mutual_recursion")
int mutual_recursion(struct bpf_sk_lookup *ctx)
{
	return ping(ctx->local_port & 3) ? SK_PASS : SK_DROP;
}

SEC("sk_lookup/pointer_result")
int pointer_result(struct bpf_sk_lookup *ctx)
{
	__u32 port = ctx->local_port, other = ctx->remote_port;
	__u32 *p = pick(&port, &other);

	return p && *p < 1024 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
