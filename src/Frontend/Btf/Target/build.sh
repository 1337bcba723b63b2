#!/bin/sh
# Rebuilds uapi_types.btf, the .BTF section of uapi_types.c (BpfJit's CO-RE target types), from the installed UAPI headers.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clang -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c "$here/uapi_types.c" -o "$tmp/uapi_types.o"
llvm-objcopy --dump-section .BTF="$here/uapi_types.btf" "$tmp/uapi_types.o"
