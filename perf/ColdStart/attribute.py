#!/usr/bin/env python3
# Where the CPU of a cold pipeline goes, by BpfJit method (docs/perf.md, "Cold start"). Reads a `perf record -d -g`
# of one BpfJit.ColdStart process published ReadyToRun with -p:PublishReadyToRunEmitSymbols=true (the *.ni.r2rmap
# files name the precompiled code, which perf cannot) and prints, for the samples under ColdRun.Once: the BpfJit
# methods on the stack (inclusive), the deepest BpfJit method of each sample (its own code plus the runtime work
# it caused: type loads, fixups, RyuJIT) and what was running (libcoreclr, libclrjit, ...).
# Usage: attribute.py PERF.DATA PUBLISH_DIR [TOP]   (perf/ColdStart/profile.sh runs it)
import sys, re, bisect, collections, os
data, r2rdir = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 60
import subprocess
out = subprocess.run(['perf','script','-i',data,'--show-mmap-events','-F','comm,tid,time,ip,sym,dso,event'], capture_output=True, text=True).stdout
maps = {}  # dso path -> base
r2r = {}
def load_r2r(name):
    p = os.path.join(r2rdir, name.replace('.dll','.ni.r2rmap'))
    if name in r2r: return r2r[name]
    ent = []
    if os.path.exists(p):
        for line in open(p):
            a = line.split(' ', 2)
            if a[0].startswith('FFFFFF'): continue
            ent.append((int(a[0],16), int(a[1],16), a[2].strip()))
        ent.sort()
    r2r[name] = ent
    return ent
def resolve(ip, sym, dso):
    base = os.path.basename(dso)
    if base.endswith('.dll'):
        ent = load_r2r(base)
        b = maps.get(dso)
        if ent and b is not None:
            if 'base' not in b or 'rx' not in b: return base + '?'
            rva = ip - b['rx'][1] + b['rx'][0] - b['base']
            i = bisect.bisect_right([e[0] for e in ent], rva) - 1
            if i >= 0 and rva < ent[i][0] + ent[i][1] + 16:
                return ent[i][2]
            return base + '?'
        return '[' + base + ']'
    if sym and sym != '[unknown]': return sym
    return '[' + base + ']'
samples = []
cur = None
for line in out.splitlines():
    if 'PERF_RECORD_MMAP' in line:
        m = re.search(r'\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (\S+) .*\]: (\S+) (\S+)$', line)
        if m and m.group(4) == 'r--p' and m.group(3) == '0' and m.group(2) == '0x1000': maps.setdefault(m.group(5), {})['base'] = int(m.group(1),16)
        if m and m.group(4) == 'r-xp': maps.setdefault(m.group(5), {})['rx'] = (int(m.group(1),16), int(m.group(3),16))
        continue
    if not line.startswith('\t') and not line.startswith(' '):
        if line.strip():
            cur = []
            samples.append(cur)
        continue
    m = re.match(r'\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$', line)
    if m and cur is not None:
        sym = re.sub(r'\+0x[0-9a-f]+$', '', m.group(2))
        cur.append(resolve(int(m.group(1),16), sym, m.group(3)))
# keep samples under ColdRun.Once; a BpfJit library frame is a resolved method of BpfJit.* (not the harness)
def lib(f): return 'BpfJit.' in f and not f.startswith('[') and 'ColdRun' not in f
incl = collections.Counter(); deepest = collections.Counter(); leafkind = collections.Counter()
n = 0
for s in samples:
    if not any('ColdRun::Once' in f for f in s): continue
    n += 1
    seen = set()
    for f in s:
        if f not in seen and lib(f): incl[f] += 1; seen.add(f)
    d = next((f for f in s if lib(f)), '(no BpfJit frame: the harness and what it calls)')
    deepest[d] += 1
    leafkind[s[0] if not s[0].startswith('0x') else '?'] += 1
print('samples under ColdRun.Once:', n)
print('--- inclusive (BpfJit frames)')
for k, v in incl.most_common(top): print(f'{v:6d} {100*v/n:5.1f}% {k[:170]}')
print('--- deepest BpfJit frame (its own code + runtime work below it)')
for k, v in deepest.most_common(top): print(f'{v:6d} {100*v/n:5.1f}% {k[:170]}')
print('--- leaf')
for k, v in leafkind.most_common(25): print(f'{v:6d} {100*v/n:5.1f}% {k[:170]}')
print('--- deepest BpfJit frame by what is running (jit = libclrjit anywhere below)')
cat = collections.defaultdict(collections.Counter)
for s in samples:
    if not any('ColdRun::Once' in f for f in s): continue
    idx = next((i for i, f in enumerate(s) if lib(f)), None)
    d = s[idx] if idx is not None else '(no BpfJit frame: the harness and what it calls)'
    below = s[:idx] if idx is not None else s
    if any('clrjit' in f for f in below): k = 'jit'
    elif idx == 0: k = 'own'
    elif any('coreclr' in f for f in below): k = 'coreclr'
    elif any(f.startswith('[System') or 'System.' in f for f in below): k = 'framework'
    else: k = 'other'
    cat[d][k] += 1
for d, c in sorted(cat.items(), key=lambda x: -sum(x[1].values()))[:top]:
    print(f'{sum(c.values()):5d} ' + ' '.join(f'{k}={v}' for k, v in c.most_common()) + '  ' + d[:150])
