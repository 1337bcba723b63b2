#!/bin/sh
# Rebuilds the committed verifier_sample.o with the selftests' flags (-O2 -g -mcpu=v3; BTF for ".maps").
set -e
cd "$(dirname "$0")"
clang=${CLANG:-$(command -v clang || command -v clang-14)}
"$clang" -g -O2 --target=bpf -mcpu=v3 -idirafter /usr/include/x86_64-linux-gnu -c verifier_sample.c -o verifier_sample.o
