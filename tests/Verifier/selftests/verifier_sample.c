// SPDX-License-Identifier: MIT
/* A tiny object in the style of the kernel's tools/testing/selftests/bpf/progs/verifier_*.c: naked
 * functions of inline assembly, one program per section, maps in ".maps". KernelSelftestsToolTests
 * runs tools/kernel-selftests' comparison core on it. Rebuild with ./build.sh (clang, committed .o). */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __naked __attribute__((naked))
#define __imm(name) [name]"i"(name)
#define __imm_addr(name) [name]"i"(&name)
#define __clobber_all "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "memory"

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, long long);
	__type(value, long long);
} map_hash_8b SEC(".maps");

/* Both verifiers accept. */
SEC("socket")
__naked void accepts_return_zero(void)
{
	asm volatile ("					\
	r0 = 0;						\
	exit;						\
"	::: __clobber_all);
}

/* Both reject: R2 !read_ok. */
SEC("socket")
__naked void rejects_uninit_register(void)
{
	asm volatile ("					\
	r0 = r2;					\
	exit;						\
"	::: __clobber_all);
}

/* A lookup, NULL check and a load of the value: both accept. */
SEC("tc")
__naked void accepts_map_value_load(void)
{
	asm volatile ("					\
	r1 = 0;						\
	*(u64*)(r10 - 8) = r1;				\
	r2 = r10;					\
	r2 += -8;					\
	r1 = %[map_hash_8b] ll;				\
	call %[bpf_map_lookup_elem];			\
	if r0 == 0 goto l0_%=;				\
	r0 = *(u64*)(r0 + 0);				\
	r0 &= 1;					\
l0_%=:	exit;						\
"	:
	: __imm(bpf_map_lookup_elem),
	  __imm_addr(map_hash_8b)
	: __clobber_all);
}

/* The kernel (root) reads the map's kernel struct through a map pointer; BpfJit refuses it on purpose
 * (docs/verifier.md, deliberate difference 2): over-strict. */
SEC("tc")
__naked void reads_map_struct_field(void)
{
	asm volatile ("					\
	r1 = %[map_hash_8b] ll;				\
	r0 = *(u32*)(r1 + 0);				\
	r0 = 0;						\
	exit;						\
"	:
	: __imm_addr(map_hash_8b)
	: __clobber_all);
}

char _license[] SEC("license") = "GPL";
