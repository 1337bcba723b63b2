# An SK_LOOKUP program in assembly (the bpf_conformance syntax that `bpfjit verify`, `run`, `cfg`,
# `dump` and `bench` read). It drops every lookup for local port 7 and lets the rest through to the
# regular socket lookup. prog.bin holds the same five instructions as raw 8-byte slots.
ldxw %r2, [%r1+60]      # ctx->local_port (struct bpf_sk_lookup, host byte order)
mov %r0, 1              # SK_PASS
jne %r2, 7, out
mov %r0, 0              # SK_DROP
out:
exit
