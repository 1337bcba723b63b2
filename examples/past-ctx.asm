# A program the verifier rejects: it reads 4 bytes at offset 200 of the 72-byte context
# (`invalid bpf_context access off=200 size=4`). `bpfjit run past-ctx.asm --no-verify ...` runs it
# anyway, with every access checked: the load faults, one line names the instruction, exit 1.
ldxw %r0, [%r1+200]
exit
