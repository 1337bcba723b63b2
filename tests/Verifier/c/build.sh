#!/bin/sh
# Rebuilds the committed .bin fixtures (clang 14, -O2, -mcpu=v3): every SEC("sk_lookup/NAME") of
# every .c file becomes NAME.bin, and its map relocations NAME.maps ("INSN SYMBOL" per line).
set -e
cd "$(dirname "$0")"
rm -f ./*.maps
for src in *.c; do
    obj="${src%.c}.o"
    clang -target bpf -O2 -mcpu=v3 -g0 -I/usr/include/x86_64-linux-gnu -c "$src" -o "$obj"
    for sec in $(llvm-objdump -h "$obj" | awk '{print $2}' | grep '^sk_lookup/'); do
        llvm-objcopy -O binary --only-section="$sec" "$obj" "${sec#sk_lookup/}.bin"
    done
    current=""
    llvm-objdump -r "$obj" | while read a b c; do
        case "$a $b $c" in
            "RELOCATION RECORDS FOR"*) current=$(echo "$c" | sed 's/^FOR \[sk_lookup\///; s/\]:$//; s/^FOR \[.*//') ;;
            *R_BPF_64_64*) [ -n "$current" ] && echo "$(( 0x$a / 8 )) $c" >> "$current.maps" ;;
        esac
    done
    rm -f "$obj"
done
