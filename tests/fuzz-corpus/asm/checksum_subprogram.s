mov %r6, %r1
mov %r7, %r2
mov %r8, 0
mov %r0, 0
loop:
jge %r8, %r7, fold
mov %r3, %r6
add %r3, %r8
ldxh %r4, [%r3+0]
be16 %r4
add %r0, %r4
add %r8, 2
ja loop
fold:
mov %r1, %r0
call local fold16
xor32 %r0, 0xffff
exit
fold16:
mov %r0, %r1
rsh %r0, 16
and %r1, 0xffff
add %r0, %r1
mov %r1, %r0
rsh %r1, 16
add32 %r0, %r1
and32 %r0, 0xffff
exit
