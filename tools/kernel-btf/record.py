#!/usr/bin/env python3
"""Records the subset of a kernel's BTF that BpfJit's verifier walks (docs/verifier.md, "Kernel BTF").

Reads raw BTF (default /sys/kernel/btf/vmlinux), keeps the structs an SK_LOOKUP program can hold a pointer to
(ROOTS) with everything they embed (members, arrays, typedefs, modifiers, type tags, enums), follows pointer
members DEPTH levels further, and writes a valid raw BTF blob with the kept types renumbered from 1. A pointer
member whose pointee is not kept points to a FWD of the same name (the verifier then refuses loads through it);
a pointer to anything but a struct or union points to void (the kernel walks both to the same result). Functions,
variables and data sections are dropped. Re-record with:

    tools/kernel-btf/record.sh

(DEPTH 1: the structs a root's pointer members point to are kept in full too, so a program can read through one
pointer it loaded; past that a pointee is a FWD. About 115 KB, 46 KB compressed.) The kernel's lists of pointer members
that stay trusted or RCU-protected when walked (the structs named T__safe_rcu, T__safe_trusted, ... in vmlinux BTF,
read by btf_nested_type_is_trusted) are kept as well.
"""
import struct
import sys

ROOTS = [
    "bpf_sk_lookup_kern", "task_struct", "pt_regs", "vm_area_struct",
    "sock_common", "sock", "tcp_sock", "tcp6_sock", "udp6_sock", "tcp_timewait_sock", "tcp_request_sock",
    "unix_sock", "mptcp_sock", "in6_addr",
]
DEPTH = 1

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC, \
    FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(1, 20)
MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)


def parse(data):
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data, 0)
    assert magic == 0xEB9F, "not raw BTF"
    strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
    types = [None]
    pos, end = hdr_len + type_off, hdr_len + type_off + type_len
    while pos < end:
        name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
        pos += 12
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        extra = []
        if kind == INT:
            extra = list(struct.unpack_from("<I", data, pos)); pos += 4
        elif kind == ARRAY:
            extra = list(struct.unpack_from("<III", data, pos)); pos += 12
        elif kind in (STRUCT, UNION):
            extra = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]; pos += 12 * vlen
        elif kind == ENUM:
            extra = [struct.unpack_from("<Ii", data, pos + 8 * i) for i in range(vlen)]; pos += 8 * vlen
        elif kind == ENUM64:
            extra = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]; pos += 12 * vlen
        elif kind == FUNC_PROTO:
            extra = [struct.unpack_from("<II", data, pos + 8 * i) for i in range(vlen)]; pos += 8 * vlen
        elif kind == VAR:
            extra = list(struct.unpack_from("<I", data, pos)); pos += 4
        elif kind == DATASEC:
            extra = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]; pos += 12 * vlen
        elif kind == DECL_TAG:
            extra = list(struct.unpack_from("<i", data, pos)); pos += 4
        types.append([name_off, kind, vlen, kflag, size_or_type, extra])
    return strings, types


def name(strings, off):
    return strings[off:strings.index(b"\0", off)].decode()


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux"
    strings, types = parse(open(path, "rb").read())
    by_name = {}
    for i, t in enumerate(types[1:], 1):
        if t[1] in (STRUCT, UNION) and t[2] > 0:
            by_name.setdefault(name(strings, t[0]), i)

    def skip_mods(i):
        while i and types[i][1] in MODIFIERS:
            i = types[i][4]
        return i

    keep = {}   # old id -> depth left when kept in full
    fwd = set()  # old ids of structs/unions written as FWD
    work = [(by_name[r], DEPTH) for r in ROOTS]
    # the verifier's allow lists of walked pointers (BTF_TYPE_SAFE_RCU and co.): only their member names and types matter
    work += [(i, 0) for n, i in by_name.items() if "__safe_" in n]

    def visit_type(i, depth):
        """Keeps type i and what it embeds; pointers to structs are followed with depth - 1."""
        while i:
            if i in keep and keep[i] >= depth:
                return
            t = types[i]
            kind = t[1]
            if kind in (STRUCT, UNION):
                work.append((i, depth))
                return
            keep[i] = max(depth, keep.get(i, -1))
            if kind in MODIFIERS:
                i = t[4]
            elif kind == ARRAY:
                visit_type(t[5][1], depth)
                i = t[5][0]
            elif kind == PTR:
                target = skip_mods(t[4])
                # the modifiers and type tags between the pointer and its pointee are kept (the kernel reads __rcu, __user, __percpu there)
                j = t[4]
                while j and types[j][1] in MODIFIERS:
                    keep[j] = max(depth, keep.get(j, -1))
                    j = types[j][4]
                if target and types[target][1] in (STRUCT, UNION):
                    if depth > 0:
                        work.append((target, depth - 1))
                    elif target not in keep:
                        fwd.add(target)
                return
            else:
                return

    while work:
        i, depth = work.pop()
        if i in keep and keep[i] >= depth:
            continue
        keep[i] = depth
        fwd.discard(i)
        for (_, mtype, _) in types[i][5]:
            visit_type(mtype, depth)

    fwd -= set(keep)
    old_ids = sorted(set(keep) | fwd)
    new_id = {old: n for n, old in enumerate(old_ids, 1)}
    strtab = bytearray(b"\0")
    str_index = {"": 0}

    def s(off):
        text = name(strings, off)
        if text not in str_index:
            str_index[text] = len(strtab)
            strtab.extend(text.encode() + b"\0")
        return str_index[text]

    def ref(i):
        """A kept reference; a pointer to anything else than a kept struct becomes void."""
        return new_id.get(i, 0)

    out = bytearray()
    for old in old_ids:
        name_off, kind, vlen, kflag, size_or_type, extra = types[old]
        if old in fwd:
            out += struct.pack("<III", s(name_off), (FWD << 24) | ((1 if kind == UNION else 0) << 31), 0)
            continue
        info = (kind << 24) | vlen | (kflag << 31)
        if kind in (PTR,) + MODIFIERS:
            target = size_or_type
            if kind == PTR:
                end = skip_mods(target)
                if not end or types[end][1] not in (STRUCT, UNION):
                    target = 0
            out += struct.pack("<III", s(name_off), info, ref(target))
        elif kind == ARRAY:
            out += struct.pack("<III", s(name_off), info, 0)
            out += struct.pack("<III", ref(extra[0]), ref(extra[1]), extra[2])
        elif kind in (STRUCT, UNION):
            out += struct.pack("<III", s(name_off), info, size_or_type)
            for (mname, mtype, moff) in extra:
                out += struct.pack("<III", s(mname), ref(mtype), moff)
        elif kind == INT:
            out += struct.pack("<III", s(name_off), info, size_or_type) + struct.pack("<I", extra[0])
        elif kind == ENUM:
            out += struct.pack("<III", s(name_off), info, size_or_type)
            for (ename, val) in extra:
                out += struct.pack("<Ii", s(ename), val)
        elif kind == ENUM64:
            out += struct.pack("<III", s(name_off), info, size_or_type)
            for (ename, lo, hi) in extra:
                out += struct.pack("<III", s(ename), lo, hi)
        elif kind == FLOAT:
            out += struct.pack("<III", s(name_off), info, size_or_type)
        else:
            raise SystemExit(f"unexpected kind {kind} in the subset (type {old})")
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(out), len(out), len(strtab))
    sys.stdout.buffer.write(header + out + strtab)
    print(f"{len(old_ids)} types ({len(fwd)} forward), {len(out) + len(strtab) + 24} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
