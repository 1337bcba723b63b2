#!/bin/sh
# Builds every SK_LOOKUP corpus program (*.c next to this script) into OUTDIR (default: alongside).
# Usage: tests/programs/build.sh [OUTDIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
CLANG=${CLANG:-clang}
for src in "$here"/*.c; do
    name=$(basename "$src" .c)
    "$CLANG" -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu \
        -c "$src" -o "$out/$name.o"
    echo "built $out/$name.o"
done
