#!/usr/bin/env bash
# The cold-start matrix of docs/perf.md ("Cold start"): the harness built plain (IL only, every method of
# BpfJit JIT-compiled at first call) and published ReadyToRun, each run in N fresh processes per runtime
# setting. Usage: perf/ColdStart/matrix.sh [OBJECT] [N]   (from the repository root)
set -euo pipefail
obj=${1:-tests/programs/dispatcher.o}
n=${2:-11}
out=${COLD_OUT:-/tmp/bpfjit-cold}
dotnet build perf/ColdStart -c Release -v quiet -o "$out/il" >/dev/null
dotnet publish perf/ColdStart -c Release -v quiet -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o "$out/r2r" >/dev/null
row() { # label, build, env...
    local label=$1 build=$2; shift 2
    env "$@" "$out/$build/BpfJit.ColdStart" "$obj" --runs "$n" |
        awk -v l="$label" '$1=="cold"||$1=="cold.cpu"||$1=="cold.jit"||$1=="cold.n"||$1=="warm"||$1=="process"{v[$1]=$2}
            END{printf "| %s | %.1f | %.1f | %.1f | %d | %.1f | %.1f |\n", l, v["cold"]/1000, v["cold.cpu"]/1000, v["cold.jit"]/1000, v["cold.n"], v["warm"]/1000, v["process"]/1000}'
}
echo "object $obj, $n processes per row, medians; $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| build, setting | cold ms | cold CPU ms | in RyuJIT ms | methods JIT-compiled | warm ms | process ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
row "IL" il
row "IL, DOTNET_TieredPGO=0" il DOTNET_TieredPGO=0
row "IL, DOTNET_TC_QuickJitForLoops=0" il DOTNET_TC_QuickJitForLoops=0
row "IL, DOTNET_TieredCompilation=0" il DOTNET_TieredCompilation=0
row "IL, DOTNET_ReadyToRun=0 (framework JIT-compiled too)" il DOTNET_ReadyToRun=0
row "ReadyToRun" r2r
row "ReadyToRun, DOTNET_TieredPGO=0" r2r DOTNET_TieredPGO=0
row "ReadyToRun, DOTNET_TieredCompilation=0" r2r DOTNET_TieredCompilation=0
echo "end $(date -u +%T), load average $(cut -d' ' -f1-3 /proc/loadavg)"
