/* The UAPI types BpfJit implements for SK_LOOKUP programs: their BTF (compiled from the installed
 * <linux/bpf.h>) is the target that CO-RE relocations are resolved against (CoreRelocator). Rebuild
 * uapi_types.btf with ./build.sh after adding a type; every type named here must be one BpfJit's runtime
 * lays out exactly as the UAPI header does. */
#include <linux/bpf.h>

struct bpf_sk_lookup sk_lookup_ctx;
struct bpf_sock sock;
struct bpf_sock_tuple sock_tuple;
struct bpf_spin_lock spin_lock;
struct bpf_timer timer;
enum sk_action sk_action_values;
enum bpf_map_type map_types;
enum bpf_func_id func_ids;
