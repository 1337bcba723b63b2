lddw %r1, 0xf0f0000000000301
mov %r0, 0
loop:
jeq %r1, 0, done
mov %r2, %r1
sub %r2, 1
and %r1, %r2
add %r0, 1
ja loop
done:
exit
