#!/bin/sh
# Rebuilds the committed objects of global-function programs (clang 14, as tests/programs/build.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CLANG=${CLANG:-clang-14}
for src in "$here"/*.c; do
    "$CLANG" -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
    echo "built ${src%.c}.o"
done
