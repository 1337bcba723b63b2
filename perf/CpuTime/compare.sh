#!/bin/bash
# Compares two builds' engines with the CPU-time harness: each case run by BASE and NEW alternately, ROUNDS times;
# prints the minimum ns per run of each and their ratio. BASE and NEW are directories holding a build's
# BpfJit.*.dll (e.g. src/Cli/bin/Release/net10.0 of two checkouts).
# usage: perf/CpuTime/compare.sh BASE NEW ENGINE ROUNDS CASE...   (from the repository root)
set -e
base=$1 new=$2 engine=$3 rounds=$4; shift 4
out=$(mktemp -d)
dotnet build "$(dirname "$0")/BpfJit.CpuTime.csproj" -c Release -o "$out/build" -v quiet -p:BpfDir="$(realpath "$new")" >/dev/null
for side in base new; do cp -r "$out/build" "$out/$side"; done
cp "$base"/BpfJit.*.dll "$out/base/"; cp "$new"/BpfJit.*.dll "$out/new/"
for c in "$@"; do
  b=(); n=()
  for _ in $(seq "$rounds"); do b+=("$("$out/base/BpfJit.CpuTime" "$c" "$engine")"); n+=("$("$out/new/BpfJit.CpuTime" "$c" "$engine")"); done
  python3 -c "import sys; b=min(map(float,sys.argv[2].split())); n=min(map(float,sys.argv[3].split())); print('%-16s %10.1f %10.1f %6.2f' % (sys.argv[1], b, n, n / b))" "$c" "${b[*]}" "${n[*]}"
done
rm -rf "$out"
