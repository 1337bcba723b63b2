ldxw %r2, [%r1+32]
mov %r0, %r2
and %r0, 1
exit
