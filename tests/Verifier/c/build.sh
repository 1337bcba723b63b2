#!/bin/sh
# Rebuilds the committed .bin fixtures from sk_lookup_c.c (clang 14, -O2, -mcpu=v3).
set -e
cd "$(dirname "$0")"
clang -target bpf -O2 -mcpu=v3 -g0 -I/usr/include/x86_64-linux-gnu -c sk_lookup_c.c -o sk_lookup_c.o
for sec in $(llvm-objdump -h sk_lookup_c.o | awk '{print $2}' | grep '^sk_lookup/'); do
    name=${sec#sk_lookup/}
    llvm-objcopy -O binary --only-section="$sec" sk_lookup_c.o "$name.bin"
done
rm -f sk_lookup_c.o
