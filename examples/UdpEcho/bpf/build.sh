#!/bin/sh
# Rebuilds steer.o from steer.c with the flags the project's corpus uses.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
${CLANG:-clang} -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c "$here/steer.c" -o "$here/steer.o"
