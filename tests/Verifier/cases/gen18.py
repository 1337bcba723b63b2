#!/usr/bin/env python3
"""Writes the generated part of 18_calls.txt: programs with 256 and 257 subprograms (BPF_MAX_SUBPROGS)."""
import sys


def many(n_funcs, name, expect):
    lines = [f"## name: {name}", f"## expect: {expect}"]
    lines += [f"call local f{i}" for i in range(n_funcs)]
    lines += ["mov %r0, 0", "exit"]
    for i in range(n_funcs):
        lines += [f"f{i}:", "mov %r0, 0", "exit"]
    return "\n".join(lines) + "\n"


sys.stdout.write(many(255, "256 subprograms (the main program and 255 functions)", "accept"))
sys.stdout.write("\n")
sys.stdout.write(many(256, "257 subprograms", "reject too many subprograms"))
