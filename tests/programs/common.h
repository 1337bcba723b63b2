/* Shared constants for the BpfJit SK_LOOKUP corpus. Values are from linux/socket.h and netinet/in.h;
 * they are spelled out here because those headers are not usable with -target bpf. */
#ifndef BPFJIT_CORPUS_COMMON_H
#define BPFJIT_CORPUS_COMMON_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#endif
