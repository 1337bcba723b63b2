#!/bin/sh
# Builds the loader's non-corpus test objects (other program types, unsupported features).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for src in "$here"/*.c; do
    clang -O2 -g -target bpf -D__x86_64__ -I/usr/include/x86_64-linux-gnu -c "$src" -o "${src%.c}.o"
done
# kptr_fields.o: its kptr pointees must be complete structs for the kernel (complete_fwd.py says why).
python3 "$here/complete_fwd.py" "$here/kptr_fields.o" task_struct
python3 "$here/complete_fwd.py" "$here/kptr_no_dtor.o" sock
python3 "$here/complete_fwd.py" "$here/kptr_bad_tag.o" task_struct
