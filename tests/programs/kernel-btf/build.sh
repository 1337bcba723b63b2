#!/bin/sh
# Builds the programs that read kernel structs through BTF pointers with CO-RE relocations (kept apart from the
# loader's corpus in tests/programs, whose programs have none). Usage: tests/programs/kernel-btf/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CLANG=${CLANG:-clang}
for src in "$here"/*.c; do
    "$CLANG" -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -I"$here/.." -c "$src" -o "${src%.c}.o"
done
