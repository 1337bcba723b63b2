/* Programs of many kernel types in one object: only sk_lookup is supported; the others must be
 * recognised by name and reported as unsupported, and an unknown section left for the host to type. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int xdp_prog(struct xdp_md *ctx) { return XDP_PASS; }
SEC("tc") int tc_prog(struct __sk_buff *skb) { return 0; }
SEC("classifier/ingress") int classifier_prog(struct __sk_buff *skb) { return 0; }
SEC("socket") int socket_prog(struct __sk_buff *skb) { return 0; }
SEC("kprobe/sys_bpf") int kprobe_prog(void *ctx) { return 0; }
SEC("tracepoint/syscalls/sys_enter_bpf") int tracepoint_prog(void *ctx) { return 0; }
SEC("cgroup_skb/ingress") int cgroup_skb_prog(struct __sk_buff *skb) { return 1; }
SEC("sk_msg") int sk_msg_prog(struct sk_msg_md *msg) { return SK_PASS; }
SEC("sk_skb/stream_verdict") int sk_skb_prog(struct __sk_buff *skb) { return SK_PASS; }
SEC("sk_reuseport") int reuseport_prog(struct sk_reuseport_md *md) { return SK_PASS; }
SEC("sk_lookup") int lookup_prog(struct bpf_sk_lookup *ctx) { return SK_PASS; }
SEC("sk_lookupx") int not_lookup_prog(struct bpf_sk_lookup *ctx) { return SK_DROP; }
SEC("custom/dispatcher") int custom_prog(struct bpf_sk_lookup *ctx) { return SK_DROP; }

char _license[] SEC("license") = "GPL";
