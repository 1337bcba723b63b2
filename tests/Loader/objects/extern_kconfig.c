/* An extern .kconfig variable, which the loader refuses (nothing would resolve it). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int LINUX_KERNEL_VERSION __kconfig;

SEC("sk_lookup") int kconfig_prog(struct bpf_sk_lookup *ctx)
{
	return LINUX_KERNEL_VERSION > 0x050900 ? SK_PASS : SK_DROP;
}

char _license[] SEC("license") = "GPL";
