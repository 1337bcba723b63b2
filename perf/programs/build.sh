#!/bin/sh
# Builds the benchmark suite's own SK_LOOKUP programs (*.c next to this script) beside their source.
# Usage: perf/programs/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CLANG=${CLANG:-clang}
for src in "$here"/*.c; do
    name=$(basename "$src" .c)
    "$CLANG" -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu \
        -c "$src" -o "$here/$name.o"
    echo "built $here/$name.o"
done
