#!/bin/sh
# Re-records BpfJit's bundled kernel BTF subset from this host's kernel (record.py says what is kept).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../src/Frontend/Btf/Kernel"
python3 "$here/record.py" /sys/kernel/btf/vmlinux | gzip -9 -n > "$out/vmlinux_subset.btf.gz"
uname -r > "$out/RECORDED_ON"
