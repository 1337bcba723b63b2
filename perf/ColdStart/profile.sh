#!/usr/bin/env bash
# A CPU profile of one cold pipeline, attributed to BpfJit's methods (docs/perf.md, "Cold start").
# Usage: perf/ColdStart/profile.sh [OBJECT] [TOP]   (from the repository root; needs perf and python3)
set -euo pipefail
obj=${1:-tests/programs/dispatcher.o}
top=${2:-30}
out=${COLD_OUT:-/tmp/bpfjit-cold}/r2r-symbols
dotnet publish perf/ColdStart -c Release -v quiet -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -p:PublishReadyToRunEmitSymbols=true -o "$out" >/dev/null
# -d records the images' read-only mappings too: the image base the r2rmap's addresses are relative to.
DOTNET_PerfMapEnabled=1 perf record -q -d -F 20000 -g -o "$out/perf.data" "$out/BpfJit.ColdStart" "$obj" >/dev/null
python3 "$(dirname "$0")/attribute.py" "$out/perf.data" "$out" "$top"
