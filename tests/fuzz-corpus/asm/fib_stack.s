mov %r1, 0
stxdw [%r10-8], %r1
mov %r1, 1
stxdw [%r10-16], %r1
mov %r6, 39
loop:
ldxdw %r1, [%r10-8]
ldxdw %r2, [%r10-16]
mov %r3, %r1
add %r3, %r2
stxdw [%r10-8], %r2
stxdw [%r10-16], %r3
sub %r6, 1
jne %r6, 0, loop
ldxdw %r0, [%r10-16]
exit
