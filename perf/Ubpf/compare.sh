#!/bin/bash
# stack_loop on BpfJit's JIT (perf/CpuTime) and on uBPF's x86-64 JIT (stack_loop.c), alternately, ROUNDS times each;
# prints each round's ns per call (thread CPU time, min of 7 batches) and the medians. uBPF is cloned and built
# outside the project (UBPF_DIR, default /tmp/ubpf; UBPF_COMMIT pins it). BpfJit's libraries: BPF_DIR (default the
# tests' build output, which holds BpfJit.Baselines.dll that perf/CpuTime references).
# usage: perf/Ubpf/compare.sh [ROUNDS]   (from the repository root, with ../shared/bench present)
set -e
rounds=${1:-7}
here=$(cd "$(dirname "$0")" && pwd)
ubpf=${UBPF_DIR:-/tmp/ubpf}
bpf=$(realpath "${BPF_DIR:-tests/bin/Release/net10.0}")
if [ ! -d "$ubpf/src/vm" ]; then
  git clone -q https://github.com/iovisor/ubpf "$ubpf/src"
  [ -n "$UBPF_COMMIT" ] && git -C "$ubpf/src" checkout -q "$UBPF_COMMIT"
fi
[ -f "$ubpf/src/vm/ubpf_config.h" ] || printf '#pragma once\n#define UBPF_HAS_ELF_H\n' > "$ubpf/src/vm/ubpf_config.h"
gcc -O2 -I "$ubpf/src/vm" -I "$ubpf/src/vm/inc" -o "$ubpf/stack_loop" "$here/stack_loop.c" "$ubpf"/src/vm/ubpf_*.c
out=$(mktemp -d)
dotnet build "$here/../CpuTime/BpfJit.CpuTime.csproj" -c Release -o "$out" -v quiet -p:BpfDir="$bpf" >/dev/null
cp "$bpf"/BpfJit.*.dll "$out/"
j=(); u=()
for _ in $(seq "$rounds"); do
  j+=("$("$out/BpfJit.CpuTime" stack_loop jit)"); u+=("$("$ubpf/stack_loop")")
  echo "bpfjit ${j[-1]}  ubpf ${u[-1]}"
done
python3 -c "import sys, statistics as s; j=list(map(float,sys.argv[1].split())); u=list(map(float,sys.argv[2].split())); print('median: bpfjit %.1f ns, ubpf %.1f ns, bpfjit/ubpf %.3f' % (s.median(j), s.median(u), s.median(j)/s.median(u)))" "${j[*]}" "${u[*]}"
rm -rf "$out"
