mov %r0, 0
jlt %r2, 20, done
ldxw %r3, [%r1+16]
be32 %r3
and32 %r3, 0xffffff00
jne32 %r3, 0xc0000200, done
mov %r0, 1
done:
exit
