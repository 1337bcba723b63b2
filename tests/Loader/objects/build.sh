#!/bin/sh
# Builds the loader's non-corpus test objects (other program types, unsupported features).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for src in "$here"/*.c; do
    clang -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
