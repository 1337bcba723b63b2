using BpfJit.Frontend.Btf;
using BpfJit.Runtime.ProgramTypes;

namespace BpfJit.Verifier;

/// <summary>
/// Loads through pointers to kernel objects (PTR_TO_BTF_ID and rdonly_untrusted_mem): the kernel's
/// check_ptr_to_btf_access, btf_struct_access and btf_struct_walk over the bundled kernel BTF (<see cref="KernelBtf"/>).
/// Every such load is marked in the instruction's facts: the engines read it as the kernel's BPF_PROBE_MEM loads do.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>What btf_struct_walk found at an offset (the kernel's WALK_* results).</summary>
    enum BtfWalk { Scalar, Ptr, PtrUntrusted, Struct }

    /// <summary>
    /// check_ptr_to_btf_access: a load of <paramref name="size"/> bytes at <paramref name="off"/> (the instruction's offset)
    /// through the BTF pointer <paramref name="reg"/>; returns what the destination register becomes.
    /// </summary>
    RegState CheckPtrToBtfAccess(int regno, in RegState reg, int off, int size, bool write)
    {
        string tname = BtfName(reg.Aux);
        if (!BaseFuncProto.IsGplCompatible(_opt.License))
            throw Err($"Cannot access kernel 'struct {tname}' from non-GPL compatible program");
        off += reg.Off;
        if (off < 0) throw Err($"R{regno} is ptr_{tname} invalid negative access: off={off}");
        if (!reg.VarOff.Equals(0UL)) throw Err($"R{regno} is ptr_{tname} invalid variable offset: off={off}, var_off={reg.VarOff}");
        if (write) throw Err("only read is supported");
        var spec = KernelBtf.Spec;
        uint id = (uint)reg.Aux;
        // A struct the subset holds only as a declaration (a pointer loaded through a pointer loaded through a root):
        // Linux has its layout, BpfJit does not.
        if (spec.Resolve(id).Kind == BtfKind.Fwd)
            throw Err($"R{regno} access to struct {tname} off={off} size={size} is not supported by BpfJit "
                + "(not in its bundled kernel BTF, tools/kernel-btf); Linux allows it");
        // The walk's own flag (btf_struct_access's tmp_flag) starts clear: only a union it crosses makes it untrusted, so an
        // untrusted pointer's scalar members are bounded as a trusted one's. The register's own trust decides the loaded pointer's.
        bool untrusted = false;
        while (true)
        {
            var walk = StructWalk(ref id, ref off, size, ref untrusted, out string? field);
            switch (walk)
            {
                case BtfWalk.Struct:
                    off = 0;
                    continue;
                case BtfWalk.Scalar:
                    return RegState.Unknown();
                case BtfWalk.PtrUntrusted:
                    return RegState.Pointer(RegType.PtrToRdonlyUntrustedMem);
                default:
                    return LoadedBtfPointer(reg, id, field!, untrusted);
            }
        }
    }

    /// <summary>
    /// The type of a pointer member loaded through <paramref name="reg"/> (check_ptr_to_btf_access's flags): a member the
    /// kernel's allow lists name (T__safe_trusted, T__safe_rcu, and their _or_null forms, kept in the bundled BTF) stays
    /// trusted or RCU-protected when loaded through a trusted or RCU pointer (SK_LOOKUP always runs in an RCU read-side
    /// section: in_rcu_cs); every other is untrusted. The _or_null forms are kept as <c>ptr_or_null_</c>, which after its
    /// NULL check is a plain pointer: BpfJit is stricter there (it walks no further as trusted).
    /// </summary>
    RegState LoadedBtfPointer(in RegState reg, uint pointee, string field, bool untrusted)
    {
        var type = RegType.PtrToUntrustedFlagBtfId;
        if (!untrusted && reg.Type is RegType.PtrToBtfId or RegType.PtrToRcuBtfId)
        {
            string owner = BtfName(reg.Aux);
            if (NestedIsSafe(owner, "__safe_trusted", field, pointee)) type = RegType.PtrToBtfId;
            else if (NestedIsSafe(owner, "__safe_rcu", field, pointee)) type = RegType.PtrToRcuBtfId;
            else if (NestedIsSafe(owner, "__safe_trusted_or_null", field, pointee) || NestedIsSafe(owner, "__safe_rcu_or_null", field, pointee))
                type = RegType.PtrToBtfIdOrNull;
        }
        var r = RegState.Pointer(type, 0, (int)pointee);
        if (type == RegType.PtrToBtfIdOrNull) r.Id = NewId();
        return r;
    }

    /// <summary>
    /// btf_nested_type_is_trusted: the struct <c>owner + suffix</c> of the kernel's BTF lists <paramref name="field"/> with
    /// a pointer to a type of the same name as <paramref name="pointee"/>.
    /// </summary>
    static bool NestedIsSafe(string owner, string suffix, string field, uint pointee)
    {
        var spec = KernelBtf.Spec;
        if (KernelBtf.FindStruct(owner + suffix) is not { } safe) return false;
        string want = KernelBtf.Name(pointee);
        foreach (var m in spec.Type(safe).Members)
        {
            if (m.Name != field) continue;
            var t = spec.Resolve(m.TypeId);
            return t.Kind == BtfKind.Ptr && spec.Resolve(t.SizeOrType).Name == want;
        }
        return false;
    }

    /// <summary>
    /// btf_struct_ids_match (not strict): the struct <paramref name="id"/> at <paramref name="off"/> is <paramref name="want"/>,
    /// or begins with it through nested structs at that offset.
    /// </summary>
    bool StructIdsMatch(int id, int off, int want)
    {
        if (off == 0 && id == want) return true;
        if (off < 0) return false;
        uint cur = (uint)id;
        try
        {
            while (true)
            {
                bool untrusted = false;
                if (KernelBtf.Spec.Resolve(cur).Kind is not (BtfKind.Struct or BtfKind.Union)) return false;
                if (StructWalk(ref cur, ref off, 1, ref untrusted, out _) != BtfWalk.Struct) return false;
                if (cur == (uint)want) return true;
                off = 0;
            }
        }
        catch (VerifyError)
        {
            return false;
        }
    }

    /// <summary>
    /// btf_struct_walk: what lies at <paramref name="off"/>, <paramref name="size"/> bytes, in struct <paramref name="id"/>;
    /// <paramref name="id"/> becomes the nested struct (Struct, <paramref name="off"/> relative to it) or the pointee (Ptr).
    /// A union of more than one member makes what is loaded through it untrusted.
    /// </summary>
    static BtfWalk StructWalk(ref uint id, ref int off, int size, ref bool untrusted, out string? field)
    {
        var spec = KernelBtf.Spec;
        field = null;
        while (true)
        {
            var t = spec.Resolve(id);
            string tname = t.Name.Length == 0 ? "(anon)" : t.Name;
            if (t.Kind is not (BtfKind.Struct or BtfKind.Union)) throw Err($"Type '{tname}' is not a struct");
            if (t.Kind == BtfKind.Union && t.Vlen != 1) untrusted = true;
            if ((long)off + size > t.SizeOrType)
            {
                // Past the end: only into a flexible array of ints or structs, its last member.
                var last = t.Vlen > 0 ? t.Members[^1] : default;
                var lastType = t.Vlen > 0 ? spec.Resolve(last.TypeId) : null;
                if (lastType is not { Kind: BtfKind.Array } || lastType.ElementCount != 0 || off < (int)(last.BitOffset / 8))
                    throw Err($"access beyond struct {tname} at off {off} size {size}");
                int moffFlex = (int)(last.BitOffset / 8);
                var elem = spec.Resolve(lastType.ElementType);
                if (elem.Kind == BtfKind.Int) return BtfWalk.Scalar;
                if (elem.Kind is not (BtfKind.Struct or BtfKind.Union) || elem.SizeOrType == 0)
                    throw Err($"access beyond struct {tname} at off {off} size {size}");
                off = (int)((off - moffFlex) % elem.SizeOrType);
                id = elem.Id;
                // Measured on Linux 6.18: an int member of a flexible array's element is not bounded by its end (8 bytes read at
                // pid->numbers[i].nr, a 4-byte int, are a scalar; the same read of a fixed member is refused), holes still are.
                untrusted = true;
                continue;
            }
            bool descended = false;
            foreach (var m in t.Members)
            {
                long moff = m.BitOffset / 8;
                if (off + size <= moff) break;
                if (m.BitfieldSize != 0)
                {
                    // The whole bitfield within the access: a scalar; a partial access finds no field.
                    long endBit = m.BitOffset + m.BitfieldSize;
                    if (off <= moff && (endBit + 7) / 8 <= off + size) return BtfWalk.Scalar;
                    continue;
                }
                if (off < moff) break;
                string mname = m.Name;
                if (!ResolveSize(spec, m.TypeId, out var mtype, out long msize, out var elemType, out long nelems))
                    throw Err($"field {mname} doesn't have size");
                long trueEnd = moff + msize;
                if (off >= trueEnd) continue;
                if (mtype.Kind == BtfKind.Array)
                {
                    if (moff == trueEnd) continue;
                    msize /= nelems;
                    moff += (off - moff) / msize * msize;
                    mtype = elemType;
                }
                if (mtype.Kind is BtfKind.Struct or BtfKind.Union)
                {
                    id = mtype.Id;
                    if (off == moff) return BtfWalk.Struct;
                    off -= (int)moff;
                    descended = true;
                    break;
                }
                if (mtype.Kind == BtfKind.Ptr)
                {
                    if (msize != size || off != moff)
                        throw Err($"cannot access ptr member {mname} with moff {moff} in struct {tname} with off {off} size {size}");
                    var pointee = spec.Resolve(mtype.SizeOrType);
                    // A FWD here is a struct the subset leaves out (record.py): a struct in Linux.
                    if (mtype.SizeOrType != 0 && pointee.Kind is BtfKind.Struct or BtfKind.Union or BtfKind.Fwd)
                    {
                        id = pointee.Id;
                        field = mname;
                        return BtfWalk.Ptr;
                    }
                    return BtfWalk.PtrUntrusted;
                }
                if (off + size > trueEnd && !untrusted)
                    throw Err($"access beyond the end of member {mname} (mend:{trueEnd}) in struct {tname} with off {off} size {size}");
                return BtfWalk.Scalar;
            }
            if (!descended) throw Err($"struct {tname} doesn't have field at offset {off}");
        }
    }

    /// <summary>
    /// __btf_resolve_size: a member type's size with modifiers skipped and arrays (of arrays) linearised: the resolved type
    /// (the outer array for an array), its total size, the element type and the number of elements (1 for a non-array).
    /// </summary>
    static bool ResolveSize(Frontend.Btf.BtfSpec spec, uint typeId, out BtfType type, out long size, out BtfType elem, out long nelems)
    {
        BtfType? array = null;
        nelems = 1;
        var t = spec.Type(typeId);
        for (int depth = 0; depth < 32; depth++)
        {
            switch (t.Kind)
            {
                case BtfKind.Int or BtfKind.Struct or BtfKind.Union or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float:
                    size = t.SizeOrType;
                    break;
                case BtfKind.Ptr:
                    size = 8;
                    break;
                case BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag:
                    t = spec.Type(t.SizeOrType);
                    continue;
                case BtfKind.Array:
                    array ??= t;
                    nelems *= t.ElementCount;
                    t = spec.Type(t.ElementType);
                    continue;
                default:
                    (type, size, elem) = (t, 0, t);
                    return false;
            }
            size *= nelems;
            elem = t;
            type = array ?? t;
            return true;
        }
        (type, size, elem) = (t, 0, t);
        return false;
    }
}
