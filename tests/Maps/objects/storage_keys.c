// TASK_STORAGE and CGRP_STORAGE maps with every kind of BTF key type: the kernel's
// bpf_local_storage_map_check_btf takes only a 32-bit int (tests/Maps/LocalStorageBtfKeyTests.cs).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct four { int x; };
enum colour { RED, GREEN };
typedef unsigned int handle_t;

/* The installed uapi header predates BPF_MAP_TYPE_CGRP_STORAGE (32). */
#define CGRP_STORAGE 32

#define STORAGE(kind, name, key_type) \
	struct { \
		__uint(type, kind); \
		__uint(map_flags, BPF_F_NO_PREALLOC); \
		__type(key, key_type); \
		__type(value, long); \
	} name SEC(".maps")

STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_int, int);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_u32, __u32);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_typedef, handle_t);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_const, const int);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_long, long);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_struct, struct four);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_enum, enum colour);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_chars, char[4]);
STORAGE(BPF_MAP_TYPE_TASK_STORAGE, task_float, float);
STORAGE(CGRP_STORAGE, cgrp_int, int);
STORAGE(CGRP_STORAGE, cgrp_struct, struct four);
STORAGE(CGRP_STORAGE, cgrp_short, short);

SEC("sk_lookup")
int prog(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
