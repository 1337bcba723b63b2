mov %r2, 5
lock add [%r1+0], %r2
mov %r3, 10
lock fetch add [%r1+0], %r3
mov %r0, %r3
lock cmpxchg [%r1+0], %r0
ldxdw %r0, [%r1+0]
exit
