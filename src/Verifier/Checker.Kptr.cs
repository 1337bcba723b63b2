using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// The kptr fields of a map value (<c>__kptr</c>, <c>__kptr_untrusted</c>): check_map_access's rules for special fields,
/// check_map_kptr_access for loads and stores, map_kptr_match_type, and bpf_kptr_xchg's arguments and result
/// (process_kptr_func). A load gives <c>rcu_ptr_or_null_</c> for a referenced kptr (an SK_LOOKUP program is not sleepable,
/// so always in an RCU read-side section, and both structs a referenced kptr may point to are RCU-protected), and
/// <c>untrusted_ptr_or_null_</c> for an unreferenced one.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>The kernel's kptr_xchg_dest_types, as check_reg_type lists them.</summary>
    const string KptrXchgDestTypes = "map_value, ptr_";

    /// <summary>
    /// check_map_access over the value's special fields, in offset order: a load, store or helper access touching the
    /// bpf_spin_lock or bpf_timer is refused; a kptr may be touched only by a direct access of 8 bytes at its constant offset.
    /// <paramref name="off"/> includes the register's fixed offset.
    /// </summary>
    void CheckSpecialFields(int regno, in RegState reg, int off, int size, bool byHelper)
    {
        var map = Map(reg.Aux);
        var fields = new List<(int Off, int Size, string Name)>();
        if (map.SpinLockOffset >= 0) fields.Add((map.SpinLockOffset, SpinLockSize, "bpf_spin_lock"));
        if (map.TimerOffset >= 0) fields.Add((map.TimerOffset, TimerSize, "bpf_timer"));
        foreach (var k in map.Kptrs ?? []) fields.Add((k.Offset, KptrField.Size, "kptr"));
        if (fields.Count == 0) return;
        fields.Sort((a, b) => a.Off.CompareTo(b.Off));
        foreach (var (p, fieldSize, name) in fields)
        {
            if (!(reg.Smin + off < p + fieldSize && p < (long)reg.Umax + off + size)) continue;
            if (name != "kptr") throw Err($"{name} cannot be accessed directly by load/store");
            if (byHelper) throw Err("kptr cannot be accessed indirectly by helper");
            if (!reg.VarOff.IsConst) throw Err("kptr access cannot have variable offset");
            ulong at = (ulong)(long)off + reg.VarOff.Value;
            if ((ulong)p != at) throw Err($"kptr access misaligned expected={p} off={at}");
            if (size != KptrField.Size) throw Err("kptr access size must be BPF_DW");
        }
    }

    /// <summary>The kptr field of map <paramref name="mapIndex"/> at exactly byte <paramref name="off"/> (btf_record_find), or null.</summary>
    KptrField? KptrAt(int mapIndex, long off) => Map(mapIndex).Kptrs?.FirstOrDefault(k => k.Offset == off);

    /// <summary>
    /// check_map_kptr_access, for a load or store of a map value that <see cref="CheckSpecialFields"/> let through at a kptr:
    /// returns the loaded pointer, or null for a store (which it checks).
    /// </summary>
    RegState? CheckMapKptrAccess(int regno, in RegState reg, int off, bool write, int valueRegno, int? stImm, bool atomic)
    {
        if (!reg.VarOff.IsConst || KptrAt(reg.Aux, off + reg.Off + (long)reg.VarOff.Value) is not { } field) return null;
        if (atomic) throw Err("kptr in map can only be accessed using BPF_MEM instruction mode");
        if (write && field.Kind == KptrKind.Referenced) throw Err("store to referenced kptr disallowed");
        if (!write)
        {
            var r = RegState.Pointer(field.Kind == KptrKind.Referenced ? RegType.PtrToRcuBtfIdOrNull : RegType.PtrToUntrustedBtfIdOrNull, 0,
                (int)KernelBtf.StructId(field.Struct));
            r.Id = NewId();
            return r;
        }
        if (stImm is { } imm)
        {
            if (imm != 0) throw Err($"BPF_ST imm must be 0 when storing to kptr at off={field.Offset}");
        }
        else if (!Regs[valueRegno].IsNull) MapKptrMatchType(valueRegno, Regs[valueRegno], field);
        return null;
    }

    /// <summary>
    /// map_kptr_match_type: what is stored in (or exchanged into) a kptr is a kernel BTF pointer to the field's struct: trusted,
    /// RCU-protected or maybe-NULL, untrusted too for an unreferenced kptr; at offset 0 of it (a referenced kptr) or at a
    /// struct that begins with it (an unreferenced one), with no variable offset.
    /// </summary>
    void MapKptrMatchType(int regno, in RegState reg, KptrField field)
    {
        string target = field.Struct;
        bool untrustedOk = field.Kind == KptrKind.Unreferenced;
        bool permitted = reg.Type is RegType.PtrToBtfId or RegType.PtrToUntrustedBtfId or RegType.PtrToBtfIdOrNull or RegType.PtrToRcuBtfId
            or RegType.PtrToRcuBtfIdOrNull || (untrustedOk && reg.Type is RegType.PtrToUntrustedFlagBtfId or RegType.PtrToUntrustedBtfIdOrNull);
        string regName = "";
        if (permitted)
        {
            regName = BtfName(reg.Aux);
            if (reg.Off < 0) throw Err($"negative offset {RegName(reg)} ptr R{regno} off={reg.Off} disallowed");
            if (!reg.VarOff.Equals(0UL)) throw Err($"variable {RegName(reg)} access var_off={reg.VarOff} disallowed");
            int want = (int)KernelBtf.StructId(target);
            if (untrustedOk ? StructIdsMatch(reg.Aux, reg.Off, want) : reg.Off == 0 && reg.Aux == want) return;
        }
        throw Err($"invalid kptr access, R{regno} type={RegName(reg)}{regName} expected=ptr_{target}"
            + (untrustedOk ? $" or untrusted_ptr_{target}" : ""));
    }

    /// <summary>
    /// process_kptr_func: bpf_kptr_xchg's destination is a map value pointer, of a map with BTF, at the constant offset of a
    /// referenced kptr of its value.
    /// </summary>
    void ProcessKptrFunc(int regno, in RegState reg, CallMeta meta)
    {
        var map = Map(reg.Aux);
        if (!map.HasBtf) throw Err($"map '{map.Name}' has to have BTF in order to use bpf_kptr_xchg");
        if (!reg.VarOff.IsConst) throw Err($"R{regno} doesn't have constant offset. kptr has to be at the constant offset");
        if (map.Kptrs is not { Count: > 0 }) throw Err($"R{regno} has no valid kptr");
        long off = reg.Off + (long)reg.VarOff.Value;
        var field = map.Kptrs.FirstOrDefault(k => off >= k.Offset && off < k.Offset + KptrField.Size)
            ?? throw Err($"off={off} doesn't point to kptr");
        if (field.Kind != KptrKind.Referenced) throw Err($"off={off} kptr isn't referenced kptr");
        meta.Kptr = field;
    }

    /// <summary>
    /// bpf_kptr_xchg's second argument (ARG_PTR_TO_BTF_ID_OR_NULL | OBJ_RELEASE): NULL, or a non-NULL kernel BTF pointer the
    /// field's type matches (map_kptr_match_type) that the program holds a reference to.
    /// </summary>
    void CheckKptrXchgValue(int regno, in RegState reg, CallMeta meta)
    {
        if (!reg.IsNull)
        {
            var type = RegTypeNames.NonNull(reg.Type);
            if (type is not (RegType.PtrToUntrustedBtfId or RegType.PtrToBtfId or RegType.PtrToRcuBtfId)) TypeMismatch(regno, BtfPtrTypes);
            if (reg.IsNullable) throw Err($"Possibly NULL pointer passed to helper arg{regno}");
            MapKptrMatchType(regno, reg, meta.Kptr ?? throw Err("verifier internal error: kptr_xchg without a kptr field"));
            if (reg.RefObjId == 0) throw Err($"R{regno} must be referenced when passed to release function");
        }
        meta.ReleaseRegno = regno;
    }

    /// <summary>bpf_kptr_xchg's result: the field's old pointer or NULL (ptr_or_null_), a reference the program acquires.</summary>
    RegState KptrXchgResult(CallMeta meta, int idx)
    {
        var field = meta.Kptr ?? throw Err("verifier internal error: kptr_xchg without a kptr field");
        var r0 = RegState.Pointer(RegType.PtrToBtfIdOrNull, 0, (int)KernelBtf.StructId(field.Struct));
        // check_helper_call: a maybe-NULL result takes an id, then acquire_reference a new one for both.
        NewId();
        r0.Id = r0.RefObjId = NewId();
        _cur.Refs.Add(new RefState(r0.Id, idx));
        return r0;
    }
}
