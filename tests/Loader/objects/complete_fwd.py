#!/usr/bin/env python3
"""Turns the BTF forward declarations of the named structs in a BPF object into empty complete structs, in place.

Clang 14 keeps a btf_type_tag ("kptr") only on a pointer to an incomplete struct, and the kernel ignores a kptr whose
pointee is a FWD: it must be a struct, which the kernel then finds by name in vmlinux BTF. A FWD and an empty STRUCT
are both 12-byte records, so the section keeps its size. Usage: complete_fwd.py obj.o task_struct [...]
"""
import struct
import sys

FWD, STRUCT = 7, 4


def main():
    path, names = sys.argv[1], set(sys.argv[2:])
    data = bytearray(open(path, "rb").read())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    shstr = sections[shstrndx][4]
    def sec_name(s):
        start = shstr + s[0]
        return data[start:data.index(b"\0", start)].decode()
    btf = next(s[4] for s in sections if sec_name(s) == ".BTF")
    hdr_len, type_off, type_len, str_off = struct.unpack_from("<IIII", data, btf + 4)
    strings = btf + hdr_len + str_off
    pos, end = btf + hdr_len + type_off, btf + hdr_len + type_off + type_len
    done = set()
    while pos < end:
        name_off, info, _ = struct.unpack_from("<III", data, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        name = data[strings + name_off:data.index(b"\0", strings + name_off)].decode()
        if kind == FWD and name in names and not info >> 31:
            struct.pack_into("<II", data, pos + 4, STRUCT << 24, 0)
            done.add(name)
        extra = {1: 4, 3: 12, 4: 12 * vlen, 5: 12 * vlen, 6: 8 * vlen, 13: 8 * vlen, 14: 4, 15: 12 * vlen, 17: 4, 19: 12 * vlen}
        pos += 12 + extra.get(kind, 0)
    if done != names:
        raise SystemExit(f"{path}: no FWD for {sorted(names - done)}")
    open(path, "wb").write(data)


if __name__ == "__main__":
    main()
