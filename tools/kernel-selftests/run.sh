#!/bin/bash
# The Linux kernel's own verifier selftests against BpfJit's verifier (docs/verifier.md,
# "The kernel's verifier selftests").
#
# usage: tools/kernel-selftests/run.sh [LINUX_SOURCE_TREE]
#
# With no argument, Debian's newest linux-source-X package is installed with apt and its tarball is
# extracted into a temporary folder. Every tools/testing/selftests/bpf/progs/verifier_*.c is compiled
# with the newest clang found (or $CLANG) against a vmlinux.h of the running kernel and the tree's own
# libbpf; every program section of each object is then loaded alone as SK_LOOKUP into the live kernel
# (through that libbpf) and verified by BpfJit, and the verdicts are compared.
#
# Environment: CLANG (compiler), KEEP=1 (keep the temporary folder and print its path),
# TSV=FILE (one line per program), FILTER=GLOB (only progs/verifier_GLOB.c, default '*').
# Needs root (bpf()), apt for missing tools, the .NET SDK. Exit 1 when a program is unsound.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/bpfjit-selftests.XXXXXX)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
start=$(date +%s)
say() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }

need_pkgs=()
command -v bpftool >/dev/null || need_pkgs+=(bpftool)
[ -e /usr/include/libelf.h ] || need_pkgs+=(libelf-dev)
[ -e /usr/include/zlib.h ] || need_pkgs+=(zlib1g-dev)
command -v make >/dev/null || need_pkgs+=(make)
command -v gcc >/dev/null || need_pkgs+=(gcc)
clang=${CLANG:-$(compgen -c clang- | grep -E '^clang-[0-9]+$' | sort -t- -k2 -n | tail -1 || true)}
[ -n "$clang" ] || clang=$(command -v clang || true)
[ -n "$clang" ] || need_pkgs+=(clang)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null
    [ -n "$clang" ] || clang=clang
fi

if [ $# -ge 1 ]; then
    src=$(cd "$1" && pwd)
else
    pkg=$(apt-cache search --names-only '^linux-source-[0-9.]+$' | awk '{print $1}' | sort -V | tail -1)
    [ -n "$pkg" ] || { echo "no linux-source-X package offered by apt (run apt-get update)" >&2; exit 2; }
    say "installing $pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null
    version=${pkg#linux-source-}
    tarball=$(ls /usr/src/linux-source-"$version".tar.* | head -1)
    say "extracting the parts of $tarball that are needed"
    tar -xf "$tarball" -C "$work" --wildcards "linux-source-$version/tools/*" "linux-source-$version/scripts/bpf_doc.py" \
        "linux-source-$version/include/uapi/*"
    src=$work/linux-source-$version
fi
sel=$src/tools/testing/selftests/bpf
[ -d "$sel/progs" ] || { echo "$src has no tools/testing/selftests/bpf/progs" >&2; exit 2; }

say "building the tree's libbpf"
mkdir -p "$work/libbpf" "$work/include" "$work/obj"
make -s -C "$src/tools/lib/bpf" -j"$(nproc)" OUTPUT="$work/libbpf/" DESTDIR="$work/root" prefix=/usr \
    install_headers "$work/libbpf/libbpf.so" >"$work/libbpf.log" 2>&1 || { tail -20 "$work/libbpf.log" >&2; exit 2; }
bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$work/include/vmlinux.h"

say "compiling $sel/progs/verifier_${FILTER:-*}.c with $clang"
export clang sel work
compile() {
    local f=$1 b
    b=$(basename "$f" .c)
    # The selftests' own flags (tools/testing/selftests/bpf/Makefile, CLANG_BPF_BUILD_RULE), without -Werror.
    if ! "$clang" -g -O2 --target=bpf -mcpu=v3 -D__TARGET_ARCH_x86 -mlittle-endian -DENABLE_ATOMICS_TESTS \
        -Wno-compare-distinct-pointer-types -I"$work/include" -I"$work/root/usr/include" -I"$sel" -I"$sel/progs" \
        -I"$sel/../../../include/uapi" -idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include \
        -c "$f" -o "$work/obj/$b.o" 2>"$work/obj/$b.err"; then
        rm -f "$work/obj/$b.o"
        printf '%s.c\t%s\n' "$b" "$(grep -m1 'error:' "$work/obj/$b.err" | sed "s|^$sel/progs/||")" >>"$work/failures.$$"
    fi
}
export -f compile
ls "$sel"/progs/verifier_${FILTER:-*}.c | xargs -P"$(nproc)" -I{} bash -c 'compile {}'
cat "$work"/failures.* 2>/dev/null | sort >"$work/failures.txt" || true

say "building the comparison tool"
dotnet build "$repo/tools/kernel-selftests/BpfJit.KernelSelftests.csproj" -c Release -v quiet -o "$work/tool" >"$work/build.log" 2>&1 \
    || { grep -E 'error' "$work/build.log" >&2; exit 2; }

say "comparing (kernel $(uname -r), $($clang --version | head -1))"
set +e
BPFJIT_LIBBPF="$work/libbpf/libbpf.so" dotnet "$work/tool/BpfJit.KernelSelftests.dll" "$work/obj" \
    --failures "$work/failures.txt" ${TSV:+--tsv "$TSV"}
rc=$?
set -e
say "done"
exit $rc
