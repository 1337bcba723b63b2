#!/bin/sh
# Builds the scenario programs (*.c here) into .o files beside them. Usage: tests/scenarios/progs/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CLANG=${CLANG:-clang}
for src in "$here"/*.c; do
    "$CLANG" -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -Wall -Werror -c "$src" -o "${src%.c}.o"
    echo "built ${src%.c}.o"
done
