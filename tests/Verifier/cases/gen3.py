exec(open("gen.py").read().split("F=\"02_return")[0])
files={}
# The kernel build (uname -r) the cases' kernel answers were last checked on (VerifierCorpus.cs).
CHECKED_ON="## checked-on: 6.18.44-fc-v1300\n"
ARR="arr:HASH:4:16:16"
KEY4="stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\n"
def lookup(m): return KEY4+f"ldmap %r1, {m}\ncall 1\n"
SM="socks:SOCKMAP:4:8:32"
F="11_pruning.txt"
# the fall-through path is explored first; the unsafe path arrives second at the join and must not be pruned
case(F,"join: pointer first, scalar second, then dereference","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, %r6\nja j\na:\nmov %r7, 0\nj:\nldxw %r0, [%r7+8]\n"+R0,"reject R7 invalid mem access 'scalar'")
case(F,"join: scalar first, pointer second, then dereference","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, 0\nja j\na:\nmov %r7, %r6\nj:\nldxw %r0, [%r7+8]\n"+R0,"reject R7 invalid mem access 'scalar'")
case(F,"join: ctx and stack pointer, then ctx load","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, %r6\nja j\na:\nmov %r7, %r10\nj:\nldxw %r0, [%r7+8]\n"+R0,"reject invalid write to stack") if False else None
case(F,"join: ctx and stack pointer, then 8-byte load at 0","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, %r10\nadd %r7, -8\nstdw [%r7+0], 0\nja j\na:\nmov %r7, %r6\nj:\nldxdw %r0, [%r7+0]\n"+R0,"reject R0 !read_ok") if False else None
case(F,"join: narrower range first, wider second, map access",lookup("arr")+"jeq %r0, 0, out\nmov %r8, %r0\ncall 7\njeq %r0, 0, a\nmov %r6, 4\nja j\na:\nmov %r6, 14\nj:\nadd %r8, %r6\nldxw %r1, [%r8+0]\nout:\n"+R0,"reject invalid access to map value, value_size=16 off=14 size=4",maps=ARR)
case(F,"join: ranges both safe",lookup("arr")+"jeq %r0, 0, out\nmov %r8, %r0\ncall 7\njeq %r0, 0, a\nmov %r6, 4\nja j\na:\nmov %r6, 12\nj:\nadd %r8, %r6\nldxw %r1, [%r8+0]\nout:\n"+R0,maps=ARR)
case(F,"join: spilled pointer first, misc second, fill and dereference","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nstxdw [%r10-8], %r6\nja j\na:\nstdw [%r10-8], 5\nj:\nldxdw %r7, [%r10-8]\nldxw %r0, [%r7+8]\n"+R0,"reject R7 invalid mem access 'scalar'")
case(F,"join: reference held on the second path only",lookup("socks")+"mov %r6, %r0\ncall 7\njeq %r0, 0, a\njeq %r6, 0, j\nmov %r1, %r6\ncall 86\nja j\na:\nj:\n"+R0,"reject Unreleased reference",maps=SM)
case(F,"join: NULL-checked first, unchecked second",lookup("arr")+"mov %r6, %r0\ncall 7\njeq %r0, 0, a\njeq %r6, 0, out\nja j\na:\nj:\nldxw %r1, [%r6+0]\nout:\n"+R0,"reject R6 invalid mem access 'map_value_or_null'",maps=ARR)
case(F,"join: ctx offset differs","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, %r6\nja j\na:\nmov %r7, %r6\nadd %r7, 4\nj:\nldxw %r0, [%r7+8]\n"+R0,"reject dereference of modified ctx ptr R7 off=4 disallowed")
case(F,"join: return value 0 first, 2 second","call 7\njeq %r0, 0, a\nmov %r6, 0\nja j\na:\nmov %r6, 2\nj:\nmov %r0, %r6\nexit","reject smin=2 smax=2")
case(F,"join: uninitialised register on the second path","call 7\njeq %r0, 0, a\nmov %r6, 0\nja j\na:\nj:\nmov %r0, %r6\nexit","reject R6 !read_ok")
case(F,"join: dead register difference is pruned","call 7\njeq %r0, 0, a\nmov %r6, 0\nja j\na:\nmov %r6, %r10\nj:\n"+R0)
case(F,"loop: index grows past the value on a later iteration",lookup("arr")+"jeq %r0, 0, out\nmov %r8, %r0\nmov %r6, 0\nl:\nmov %r7, %r8\nadd %r7, %r6\nldxw %r1, [%r7+0]\nadd %r6, 4\njlt %r6, 16, l\nout:\n"+R0,"reject invalid access to map value, value_size=16 off=13 size=4") if False else None
case(F,"loop: index stays within the value",lookup("arr")+"jeq %r0, 0, out\nmov %r8, %r0\nmov %r6, 0\nl:\nmov %r7, %r8\nadd %r7, %r6\nldxw %r1, [%r7+0]\nadd %r6, 4\njlt %r6, 13, l\nout:\n"+R0,maps=ARR)
case(F,"loop: index runs one step too far",lookup("arr")+"jeq %r0, 0, out\nmov %r8, %r0\nmov %r6, 0\nl:\nmov %r7, %r8\nadd %r7, %r6\nldxw %r1, [%r7+0]\nadd %r6, 4\njlt %r6, 17, l\nout:\n"+R0,"reject invalid access to map value, value_size=16 off=16 size=4",maps=ARR)
case(F,"loop: stack writes down the frame",  "mov %r6, %r10\nmov %r1, 0\nl:\nadd %r6, -8\nstdw [%r6+0], 0\nadd %r1, 1\njlt %r1, 64, l\n"+R0)
case(F,"loop: stack writes one slot too far","mov %r6, %r10\nmov %r1, 0\nl:\nadd %r6, -8\nstdw [%r6+0], 0\nadd %r1, 1\njlt %r1, 65, l\n"+R0,"reject invalid write to stack R6 off=-520 size=8")
case(F,"loop with a random exit and an accumulator","mov %r6, 0\nl:\nadd %r6, 1\ncall 7\njgt %r6, 50, out\njne %r0, 0, l\nout:\n"+R0)
case(F,"two references released in either order",lookup("socks")+"mov %r6, %r0\n"+lookup("socks")+"mov %r7, %r0\njeq %r6, 0, x\njeq %r7, 0, y\ncall 7\njeq %r0, 0, ab\nmov %r1, %r7\ncall 86\nmov %r1, %r6\ncall 86\n"+R0+"\nab:\nmov %r1, %r6\ncall 86\nmov %r1, %r7\ncall 86\n"+R0+"\nx:\njeq %r7, 0, z\nmov %r1, %r7\ncall 86\nz:\n"+R0+"\ny:\nmov %r1, %r6\ncall 86\n"+R0,maps=SM)
case(F,"reference swapped between registers on one path",lookup("socks")+"mov %r6, %r0\n"+lookup("socks")+"mov %r7, %r0\njeq %r6, 0, x\njeq %r7, 0, y\nmov %r1, %r7\ncall 86\nmov %r1, %r7\ncall 86\n"+R0+"\nx:\njeq %r7, 0, z\nmov %r1, %r7\ncall 86\nz:\n"+R0+"\ny:\nmov %r1, %r6\ncall 86\n"+R0,"reject",maps=SM)

case(F,"sk_assign with a scalar that is NULL on the first path only","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, 0\nja b\na:\nmov %r7, 3\nb:\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n"+R0,"reject R2 type=scalar expected=sock")
case(F,"sk_assign with a scalar that is NULL on the first path only, after a checkpoint (earlier 6.18 builds pruned it unsafely)",
"mov %r6, %r1\nstdw [%r10-8], 0\nmov %r7, 0\nmov %r8, 0\nmov %r9, 0\nmov %r2, %r8\nadd %r2, 3\njgt %r2, 4, l1\njeq %r8, 0, l1\nmov %r0, %r7\nl1:\njeq %r9, 0, l2\nmov %r1, %r9\ncall 86\nmov %r9, 0\nl2:\ncall 7\njeq %r0, 0, a\nmov %r7, 0\nja b\na:\nmov %r7, 3\nb:\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, arr2\ncall 1\nmov %r8, %r0\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n"+R0,
"reject R2 type=scalar expected=sock",maps="arr2:ARRAY:4:12:2")
case(F,"sk_assign with a scalar that is NULL on the second path only","mov %r6, %r1\ncall 7\njeq %r0, 0, a\nmov %r7, 3\nja b\na:\nmov %r7, 0\nb:\nmov %r1, %r6\nmov %r2, %r7\nmov %r3, 0\ncall 124\n"+R0,"reject R2 type=scalar expected=sock")

F="12_more.txt"
case(F,"jmp32 on a 64-bit pointer check","call 7\njeq32 %r0, 0, a\n"+R1+"\na:\n"+R0)
case(F,"32-bit compare decides a masked value","call 7\nand %r0, 0xff\njgt32 %r0, 1, drop\nexit\ndrop:\n"+R0)
case(F,"signed 32-bit compare","call 7\nmov32 %r0, %r0\njsgt32 %r0, 1, drop\njslt32 %r0, 0, drop\nexit\ndrop:\n"+R0)
case(F,"jset narrows to one bit","call 7\nand %r0, 3\njset %r0, 2, drop\nexit\ndrop:\n"+R0)
case(F,"xor of a bounded value","call 7\nand %r0, 1\nxor %r0, 1\nexit")
case(F,"sub gives a bounded value","call 7\nand %r0, 1\nmov %r1, 1\nsub %r1, %r0\nmov %r0, %r1\nexit")
case(F,"arsh of a negative bounded value","call 7\nand %r0, 1\nneg %r0\narsh %r0, 63\nneg %r0\nexit")
case(F,"32-bit add then zero extension","call 7\nand %r0, 1\nadd32 %r0, 0\nexit")
case(F,"mul32 keeps a bit","call 7\nand32 %r0, 1\nmul32 %r0, 1\nexit")
case(F,"lsh32 overflowing","call 7\nand %r0, 1\nlsh32 %r0, 31\nrsh32 %r0, 31\nexit")
case(F,"unsigned 64-bit comparison with a large constant","lddw %r1, 0x8000000000000000\ncall 7\njge %r0, 2, drop\nexit\ndrop:\n"+R0)
case(F,"register-register jlt between bounded values","call 7\nand %r0, 7\nmov %r1, 2\njlt %r0, %r1, ok\n"+R0+"\nok:\nexit")
case(F,"register-register jeq copies bounds","call 7\nmov %r6, %r0\ncall 7\nand %r0, 1\njeq %r6, %r0, ok\n"+R0+"\nok:\nmov %r0, %r6\nexit")
case(F,"ctx family compare and protocol read","ldxw %r2, [%r1+8]\njne %r2, 2, drop\nldxw %r3, [%r1+12]\njne %r3, 6, drop\n"+R1+"\ndrop:\n"+R0)
case(F,"v6 local address compare","ldxw %r2, [%r1+44]\nldxw %r3, [%r1+48]\nldxw %r4, [%r1+52]\nldxw %r5, [%r1+56]\nor %r2, %r3\nor %r2, %r4\nor %r2, %r5\njne %r2, 0, drop\n"+R1+"\ndrop:\n"+R0)
case(F,"check_ifindex","ldxw %r2, [%r1+64]\njeq %r2, 1, drop\n"+R1+"\ndrop:\n"+R0)
case(F,"stack key built from ctx fields","ldxw %r2, [%r1+60]\nstxw [%r10-8], %r2\nldxw %r2, [%r1+12]\nstxb [%r10-4], %r2\nstb [%r10-3], 0\nsth [%r10-2], 0\nmov %r2, %r10\nadd %r2, -8\nldmap %r1, h\ncall 1\n"+R0,maps="h:HASH:8:8:16")
case(F,"spilled constant key on an 8-byte slot","stdw [%r10-8], 7\nmov %r2, %r10\nadd %r2, -8\nldmap %r1, h\ncall 1\n"+R0,maps="h:HASH:8:8:16")
case(F,"lookup value used as a key for a sockmap",lookup("h4")+"jeq %r0, 0, out\nmov %r2, %r0\nldmap %r1, socks\ncall 1\njeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout:\n"+R0,maps="h4:HASH:4:4:16, "+SM)
case(F,"ctx->sk passed to sk_assign after NULL check","ldxdw %r2, [%r1+0]\njeq %r2, 0, out\nmov %r3, 1\ncall 124\nout:\n"+R0)
case(F,"sk_assign result drives the verdict","mov %r2, 0\nmov %r3, 0\ncall 124\njeq %r0, 0, pass\n"+R0+"\npass:\n"+R1)
case(F,"sockmap lookup from a subprogram-free two-step key","stdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, socks\ncall 1\njeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout:\n"+R0,maps=SM)
case(F,"ringbuf memory with a NULL check through a copy","ldmap %r1, rb\nmov %r2, 16\nmov %r3, 0\ncall 131\nmov %r6, %r0\njeq %r0, 0, out\nstdw [%r6+8], 1\nmov %r1, %r6\nmov %r2, 0\ncall 132\nout:\n"+R0,maps="rb:RINGBUF:0:0:4096")
case(F,"ringbuf reserve with a non-ringbuf map","ldmap %r1, h\nmov %r2, 16\nmov %r3, 0\ncall 131\n"+R0,"reject cannot pass map_type 1 into func bpf_ringbuf_reserve#131",maps="h:HASH:8:8:16")
case(F,"lookup on a ring buffer","stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, rb\ncall 1\n"+R0,"reject invalid zero-sized read",maps="rb:RINGBUF:0:0:4096")
case(F,"subprogram with its own stack and a key","call local f\nexit\nf:\nstw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, h4\ncall 1\njeq %r0, 0, o\n"+R1+"\no:\n"+R0,maps="h4:HASH:4:4:16")
case(F,"subprogram returns a map value pointer","call local f\njeq %r0, 0, o\nldxw %r1, [%r0+0]\no:\n"+R0+"\nf:\n"+lookup("h4")+"exit",maps="h4:HASH:4:4:16")
case(F,"callee uses a pointer to the caller's stack as a key","stw [%r10-4], 0\nmov %r1, %r10\nadd %r1, -4\ncall local f\n"+R0+"\nf:\nmov %r2, %r1\nldmap %r1, h4\ncall 1\n"+R0,maps="h4:HASH:4:4:16")
case(F,"callee spills a pointer to the caller's stack into its own stack","mov %r1, %r10\nadd %r1, -8\ncall local f\n"+R0+"\nf:\nstxdw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nstdw [%r2+0], 1\n"+R0)
case(F,"callee spills its stack pointer into the caller's stack","mov %r1, %r10\nadd %r1, -8\ncall local f\n"+R0+"\nf:\nmov %r2, %r10\nadd %r2, -16\nstxdw [%r1+0], %r2\n"+R0,"reject cannot spill pointers to stack into stack frame of the caller")
case(F,"sign-extending load of a misc stack byte is in [-128, 127]","stb [%r10-1], -1\nldxsb %r0, [%r10-1]\nadd %r0, 1\nexit","reject smin=-127 smax=128")
case(F,"movsx32 of a negative halfword","mov %r1, 0xffff\nmovsx1632 %r0, %r1\nadd32 %r0, 1\nexit")
case(F,"stack pointer arithmetic with a bounded register","call 7\nand %r0, 8\nmov %r2, %r10\nadd %r2, -16\nadd %r2, %r0\nstdw [%r2+0], 0\n"+R0)
case(F,"stack pointer with a variable offset passed as a key","stdw [%r10-16], 0\nstdw [%r10-8], 0\ncall 7\nand %r0, 4\nmov %r2, %r10\nadd %r2, -12\nadd %r2, %r0\nldmap %r1, h4\ncall 1\n"+R0,maps="h4:HASH:4:4:16")
case(F,"stack pointer with a variable offset passed as a key past the frame","call 7\nand %r0, 8\nmov %r2, %r10\nadd %r2, -4\nadd %r2, %r0\nldmap %r1, h4\ncall 1\n"+R0,"reject invalid variable-offset read from stack R2",maps="h4:HASH:4:4:16")
case(F,"trace_printk from a read-only map value","ldmapval %r1, rodata, 0\nmov %r2, 4\ncall 6\n"+R0,maps="rodata:ARRAY:4:8:1:0:ro")
case(F,"perf_event_output with size zero","mov %r6, %r1\nmov %r1, %r6\nldmap %r2, ev\nmov %r3, 0\nmov %r4, %r10\nadd %r4, -8\nmov %r5, 0\ncall 25\n"+R0,maps="ev:PERF_EVENT_ARRAY:4:4:4")
case(F,"read from a write-only map value","stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, wo\ncall 1\nldxw %r0, [%r0+0]\n"+R0,"reject read from map forbidden, value_size=8 off=0 size=4",maps="wo:ARRAY:4:8:2:0x100")
case(F,"write to a write-only map value","stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, wo\ncall 1\nstw [%r0+0], 1\n"+R0,maps="wo:ARRAY:4:8:2:0x100")
case(F,"write to a program-read-only map value by flag","stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, ro\ncall 1\nstw [%r0+0], 1\n"+R0,"reject write into map forbidden, value_size=8 off=0 size=4",maps="ro:ARRAY:4:8:2:0x80")
for f,c in files.items(): open(f,"w").write(CHECKED_ON+"".join(c))
print({f:len(c) for f,c in files.items()})
