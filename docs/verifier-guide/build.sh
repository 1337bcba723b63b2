#!/bin/sh
# Rebuilds the verifier guide's examples (each .c next to this script into its .o).
# tests/Verifier/GuideExampleTests checks that each object is rejected with the message its
# "/* expect: ... */" line names.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for src in "$here"/*.c; do
    ${CLANG:-clang} -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
