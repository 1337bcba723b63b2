using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>The kind of dynptr a <see cref="SlotKind.Dynptr"/> stack slot holds (the kernel's enum bpf_dynptr_type, as far as SK_LOOKUP makes them).</summary>
internal enum DynptrKind : byte
{
    /// <summary>No dynptr.</summary>
    None,
    /// <summary>BPF_DYNPTR_TYPE_LOCAL: over memory the program has (bpf_dynptr_from_mem).</summary>
    Local,
    /// <summary>BPF_DYNPTR_TYPE_RINGBUF: over a reserved ring-buffer record, a reference to release (bpf_ringbuf_reserve_dynptr).</summary>
    Ringbuf,
}

/// <summary>
/// Dynptrs on the stack, as Linux 6.18 checks them (process_dynptr_func, mark_stack_slots_dynptr, unmark_stack_slots_dynptr,
/// destroy_if_dynptr_stack_slot, is_dynptr_reg_valid_init/uninit). A dynptr is 16 bytes in two 8-byte slots at a constant,
/// slot-aligned offset, both of kind <see cref="SlotKind.Dynptr"/>; each slot's spilled register holds the dynptr's kind and
/// its reference, and the upper (first) slot is marked first. A helper with an uninitialised dynptr argument writes both
/// slots and makes the dynptr (a RINGBUF one acquires a reference, released by submit or discard, or "Unreleased
/// reference" at exit); one with an initialised dynptr argument checks that both slots hold one of the expected kind.
/// Stores over an unreferenced dynptr destroy it, and with it its slices; over a referenced one they are refused; helpers
/// may not write over one. Releasing a RINGBUF dynptr kills its slices through their reference.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>sizeof(struct bpf_dynptr): two stack slots.</summary>
    const int DynptrBytes = 16;

    /// <summary>
    /// dynptr_get_spi: the upper slot of the dynptr a stack pointer names, -1 with no error when the slots are past the
    /// allocated stack (the kernel's -ERANGE), or the kernel's message.
    /// </summary>
    static (int Spi, string? Error) DynptrSpi(in RegState reg, FuncState frame)
    {
        if (!reg.VarOff.IsConst) return (-1, "dynptr has to be at a constant offset");
        int off = reg.Off + (int)(long)reg.VarOff.Value;
        if (off % 8 != 0 || off >= -8) return (-1, $"cannot pass in dynptr at an offset={off}");
        int spi = (-off - 1) / 8;
        return (spi < frame.Stack.Allocated / 8 ? spi : -1, null);
    }

    static DynptrKind DynptrKindOf(ArgType arg) => arg switch
    {
        ArgType.PtrToUninitLocalDynptr => DynptrKind.Local,
        ArgType.PtrToUninitRingbufDynptr => DynptrKind.Ringbuf,
        _ => DynptrKind.None,
    };

    /// <summary>
    /// process_dynptr_func for a helper argument (and, for a release argument, check_func_arg's unacquired-reference check
    /// before it). The kernel numbers the argument from 0 in these messages, the register in the release one.
    /// </summary>
    void ProcessDynptrArg(int regno, ArgType arg, CallMeta meta)
    {
        var reg = Regs[regno];
        bool isConst = reg.Type == RegType.ConstPtrToDynptr;
        if (arg == ArgType.PtrToRingbufDynptrRelease)
        {
            if (isConst) throw Err("cannot release unowned const bpf_dynptr");
            var (rspi, _) = DynptrSpi(reg, _cur.Frames[reg.Frame]);
            if (rspi < 0 || _cur.Frames[reg.Frame].Stack.Spilled[rspi].RefObjId == 0) throw Err($"arg {regno} is an unacquired reference");
            meta.DynptrReleaseRegno = regno;
        }
        if (arg is ArgType.PtrToUninitLocalDynptr or ArgType.PtrToUninitRingbufDynptr)
        {
            const string uninit = "Dynptr has to be an uninitialized dynptr";
            if (isConst) throw Err(uninit);
            var (_, error) = DynptrSpi(reg, _cur.Frames[reg.Frame]);
            if (error != null) throw Err(error + "\n" + uninit);
            // The helper writes the 16 bytes, 8 at a time (check_mem_access): this destroys an unreferenced dynptr there.
            for (int i = 0; i < DynptrBytes; i += 8)
                CheckStackAccess(_cur.Insn, regno, Regs[regno], i, 8, write: true, valueRegno: -1, stImm: null);
            MarkDynptrSlots(reg, DynptrKindOf(arg));
            return;
        }
        // bpf_dynptr_read/write/data take a dynptr they do not change (MEM_RDONLY): the runtime's dynptr_ptr will do.
        if (isConst) return;
        var frame = _cur.Frames[reg.Frame];
        var (spi, err) = DynptrSpi(reg, frame);
        if (err != null || spi < 0 || !frame.Stack.IsDynptr(spi) || !frame.Stack.Spilled[spi].DynptrFirst || !frame.Stack.IsDynptr(spi - 1))
            throw Err((err != null ? err + "\n" : "") + $"Expected an initialized dynptr as arg #{regno - 1}");
        // The kernel's is_dynptr_type_expected needs no check here: only a RINGBUF dynptr holds the reference a release
        // argument asks for, and the other dynptr arguments take any kind. A slice (bpf_dynptr_data) of a RINGBUF dynptr
        // dies with its reference.
        meta.DynptrRefObjId = frame.Stack.Spilled[spi].RefObjId;
        meta.DynptrId = frame.Stack.Spilled[spi].Id;
    }

    /// <summary>mark_stack_slots_dynptr: both slots become the dynptr; a RINGBUF one acquires a reference.</summary>
    void MarkDynptrSlots(in RegState reg, DynptrKind kind)
    {
        var frame = _cur.Frames[reg.Frame];
        var st = frame.Stack;
        int spi = DynptrSpi(reg, frame).Spi;
        DestroyIfDynptrSlot(st, spi);
        DestroyIfDynptrSlot(st, spi - 1);
        var slot = RegState.NotInit;
        slot.Dynptr = kind;
        slot.Id = NewId();
        if (kind == DynptrKind.Ringbuf)
        {
            slot.RefObjId = NewId();
            _cur.Refs.Add(new RefState(slot.RefObjId, _cur.Insn));
        }
        st.Spilled[spi - 1] = slot;
        slot.DynptrFirst = true;
        st.Spilled[spi] = slot;
        for (int k = 0; k < 8; k++)
        {
            st.SetKind(spi, k, SlotKind.Dynptr);
            st.SetKind(spi - 1, k, SlotKind.Dynptr);
        }
    }

    /// <summary>
    /// unmark_stack_slots_dynptr after bpf_ringbuf_submit_dynptr or discard_dynptr: the reference is released, and with it
    /// every dynptr slot holding it (in any frame) and every slice taken from it.
    /// </summary>
    void ReleaseDynptr(int regno)
    {
        var reg = Regs[regno];
        var frame = _cur.Frames[reg.Frame];
        int spi = DynptrSpi(reg, frame).Spi;
        int refId = frame.Stack.Spilled[spi].RefObjId;
        foreach (var f in _cur.Frames)
        {
            var st = f.Stack;
            for (int s = 0; s < st.Allocated / 8; s++)
                if (st.IsDynptr(s) && st.Spilled[s].RefObjId == refId) InvalidateDynptrSlot(st, s);
        }
        ReleaseReference(refId);
    }

    /// <summary>
    /// destroy_if_dynptr_stack_slot: a store into either slot of an unreferenced dynptr destroys the whole dynptr; one into
    /// a referenced (RINGBUF) dynptr is refused, since the reference could then never be released.
    /// </summary>
    void DestroyIfDynptrSlot(StackState st, int spi)
    {
        if (spi < 0 || !st.IsDynptr(spi)) return;
        int first = st.Spilled[spi].DynptrFirst ? spi : spi + 1;
        if (st.Spilled[first].Dynptr == DynptrKind.Ringbuf) throw Err("cannot overwrite referenced dynptr");
        int dynptrId = st.Spilled[first].Id;
        InvalidateDynptrSlot(st, first);
        InvalidateDynptrSlot(st, first - 1);
        // Its slices (bpf_dynptr_data results, in registers or spilled, in any frame) point into data the program no
        // longer has a dynptr for: as root (allow_ptr_leaks) they become unknown scalars, as the kernel's mark_reg_invalid.
        _cur.ForEachReg((ref RegState r) =>
        {
            if (r.Type is RegType.PtrToArgMem or RegType.PtrToArgMemOrNull && r.DynptrId == dynptrId) r = RegState.Unknown();
        });
    }

    static void InvalidateDynptrSlot(StackState st, int spi)
    {
        for (int k = 0; k < 8; k++) st.SetKind(spi, k, SlotKind.Invalid);
        st.Spilled[spi] = RegState.NotInit;
    }
}
