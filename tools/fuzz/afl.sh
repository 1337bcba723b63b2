#!/usr/bin/env bash
# Coverage-guided fuzzing of one harness with AFL++ through SharpFuzz (docs/reliability.md).
#   tools/fuzz/afl.sh TARGET [SECONDS]      TARGET: elf, decode, verify, asm, conformance, scenario
# Needs afl++ (apt-get install afl++) and the sharpfuzz tool (dotnet tool install SharpFuzz.CommandLine).
# Builds the harness into a scratch folder, instruments BpfJit.Frontend.dll (decoder, assembler, ELF/BTF
# loader, conformance parser), and runs afl-fuzz on the target's corpus; findings go to /tmp/bpfjit-afl-TARGET.
set -euo pipefail
target="${1:?usage: afl.sh TARGET [SECONDS]}"
seconds="${2:-600}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
case "$target" in
  elf) corpus=elf ;; decode|verify) corpus=decode ;; asm) corpus=asm ;; conformance) corpus=conformance ;; scenario) corpus=scenario ;;
  *) echo "unknown target '$target'" >&2; exit 2 ;;
esac
sharpfuzz="$(command -v sharpfuzz || echo "$HOME/.dotnet/tools/sharpfuzz")"
out="/tmp/bpfjit-afl-$target"
bin="$out/bin"
rm -rf "$out"
dotnet build "$root/tools/fuzz/BpfJit.Fuzz.csproj" -c Release -o "$bin" >/dev/null
"$sharpfuzz" "$bin/BpfJit.Frontend.dll"
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  afl-fuzz -i "$root/tests/fuzz-corpus/$corpus" -o "$out/findings" -t 10000 -m none -V "$seconds" -- dotnet "$bin/BpfJit.Fuzz.dll" "$target"
grep -E "execs_done|saved_crashes|saved_hangs|corpus_count|edges_found" "$out/findings/default/fuzzer_stats"
