// uBPF's x86-64 JIT on ../shared/bench/stack_loop, timed as perf/CpuTime times BpfJit: this thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID) per call, the minimum of 7 batches; prints ns per call. Built against a uBPF checkout
// outside the project by compare.sh (docs/perf.md, "../shared/bench: stack_loop against uBPF's JIT").
// Optional argument: a file to write the JIT's machine code to (objdump -D -b binary -mi386:x86-64 FILE).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ubpf.h"
struct ins { uint8_t op; uint8_t regs; int16_t off; int32_t imm; };
#define R(d,s) ((uint8_t)((d) | ((s) << 4)))
static struct ins prog[] = {
  {0xb7, R(0,0), 0, 0}, {0xb7, R(1,0), 0, 1000},
  {0x7b, R(10,1), -8, 0}, {0x79, R(2,10), -8, 0}, {0x0f, R(0,2), 0, 0},
  {0x71, R(3,10), -8, 0}, {0x0f, R(0,3), 0, 0}, {0x17, R(1,0), 0, 1},
  {0x55, R(1,0), -7, 0}, {0x95, 0, 0, 0} };
static double now(void){ struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec*1e9+t.tv_nsec; }
static int cmp(const void*a,const void*b){ double x=*(double*)a,y=*(double*)b; return x<y?-1:x>y; }
int main(int argc, char** argv){
  struct ubpf_vm* vm = ubpf_create(); char* err = NULL;
  if (ubpf_load(vm, prog, sizeof prog, &err) < 0) { fprintf(stderr, "load: %s\n", err); return 1; }
  ubpf_jit_fn fn = ubpf_compile(vm, &err); if (!fn) { fprintf(stderr, "compile: %s\n", err); return 1; }
  uint64_t r = fn(NULL, 0); if (r != 0x98b28) { fprintf(stderr, "wrong result 0x%lx\n", (unsigned long)r); return 1; }
  if (argc > 1) { uint8_t buf[65536]; size_t sz = sizeof buf; ubpf_translate(vm, buf, &sz, &err); FILE* f = fopen(argv[1], "wb"); fwrite(buf,1,sz,f); fclose(f); }
  enum { BATCH = 50000, ROUNDS = 7 }; double t[ROUNDS]; volatile uint64_t sink = 0;
  for (int k = 0; k < 2000; k++) sink += fn(NULL, 0);
  for (int i = 0; i < ROUNDS; i++) { double a = now(); for (int k = 0; k < BATCH; k++) sink += fn(NULL, 0); t[i] = (now() - a) / BATCH; }
  qsort(t, ROUNDS, sizeof t[0], cmp);
  printf("%.1f\n", t[0]);
  return 0; }
