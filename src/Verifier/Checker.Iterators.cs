using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// The open-coded numeric iterator (bpf_iter_num_new/next/destroy; libbpf's bpf_for and bpf_repeat), as
/// Linux 6.18 checks it (process_iter_arg, process_iter_next_call). The iterator is an 8-byte stack
/// object whose slot holds its state (<see cref="SlotKind.Iter"/>) and a reference that bpf_iter_num_new
/// acquires and bpf_iter_num_destroy releases, so an iterator left alive is a leak at exit. Each
/// next() on an active iterator forks: this path gets NULL and the iterator drained; the queued path
/// gets the element and goes one iteration deeper, and the loop converges at the next() checkpoint
/// when a deeper state falls within one still being explored (<see cref="IsStateVisited"/>).
/// </summary>
internal sealed partial class Checker
{
    /// <summary>Bytes of the kernel's struct bpf_iter_num_kern { int cur; int end; }: one stack slot.</summary>
    const int IterNumBytes = 8;

    /// <summary>Bytes of the element next() points to (an int).</summary>
    const int IterNumElemBytes = 4;

    void CheckIterNumCall(string name, int idx)
    {
        var regs = Regs;
        var it = regs[1];
        // The iterator kfuncs take trusted arguments: a known NULL is refused before the argument's kind.
        if (it.IsNull) throw Err("Possibly NULL pointer passed to trusted arg0");
        if (it.Type != RegType.PtrToStack) throw Err("arg#0 expected pointer to an iterator on stack");
        var frame = _cur.Frames[it.Frame];
        if (name == "bpf_iter_num_new")
        {
            const string uninit = "expected uninitialized iter_num as arg #0";
            var (spi, error) = IterSpi(it, frame);
            if (error != null) throw Err(error + "\n" + uninit);
            if (spi >= 0)
                for (int k = 0; k < 8; k++)
                    if (frame.Stack.Kind(spi, k) == SlotKind.Iter) throw Err(uninit);
            // The constructor writes the whole object (check_mem_access of each 8 bytes).
            CheckStackAccess(idx, 1, it, 0, IterNumBytes, write: true, valueRegno: -1, stImm: null);
            spi = IterSpi(it, frame).Spi;
            for (int r = 2; r <= 3; r++)
                if (!regs[r].IsScalar) throw Err($"R{r} is not a scalar");
            int id = NewId();
            _cur.Refs.Add(new RefState(id, idx));
            var slot = RegState.Pointer(RegType.PtrToStack);
            slot.RefObjId = id;
            slot.Iter = IterState.Active;
            frame.Stack.Spilled[spi] = slot;
            for (int k = 0; k < 8; k++) frame.Stack.SetKind(spi, k, SlotKind.Iter);
            for (int r = 0; r < BpfAbi.CallerSavedCount; r++) regs[r] = RegState.NotInit;
            regs[0] = RegState.Unknown();
            _cur.Insn = idx + 1;
            return;
        }
        int at = InitializedIter(it, frame);
        var iter = frame.Stack.Spilled[at];
        if (name == "bpf_iter_num_destroy")
        {
            // Releasing the reference invalidates every element pointer next() returned from it.
            ReleaseReference(iter.RefObjId);
            frame.Stack.Spilled[at] = RegState.NotInit;
            for (int k = 0; k < 8; k++) frame.Stack.SetKind(at, k, SlotKind.Invalid);
            for (int r = 0; r < BpfAbi.CallerSavedCount; r++) regs[r] = RegState.NotInit;
            _cur.Insn = idx + 1;
            return;
        }
        // bpf_iter_num_next: int * or NULL.
        for (int r = 0; r < BpfAbi.CallerSavedCount; r++) regs[r] = RegState.NotInit;
        if (iter.Iter == IterState.Active)
        {
            // Another element: queued one iteration deeper, with the scalars that changed since the previous
            // iteration widened so that a counter does not keep the loop from converging.
            var queued = _cur.Clone();
            queued.Insn = idx + 1;
            ref var qit = ref queued.Frames[it.Frame].Stack.Spilled[at];
            qit.IterDepth++;
            if (PreviousEntry(idx, skip: _cur.Parent) is { } prev)
            {
                var saved = _cur;
                _cur = queued;
                Widen(prev);
                _cur = saved;
            }
            var elem = RegState.Pointer(RegType.PtrToRdonlyMem, aux: IterNumElemBytes);
            elem.Id = NewId();
            elem.RefObjId = iter.RefObjId;
            queued.Cur.Regs[0] = elem;
            Push(queued);
        }
        // This path: no more elements, and none later.
        frame.Stack.Spilled[at].Iter = IterState.Drained;
        regs[0] = RegState.Known(0);
        _cur.Insn = idx + 1;
    }

    /// <summary>
    /// The stack slot an iterator pointer names (stack_slot_obj_get_spi): -1 with no error when it is past the
    /// allocated stack (the kernel's -ERANGE, fine for a constructor), or the kernel's message.
    /// </summary>
    static (int Spi, string? Error) IterSpi(in RegState reg, FuncState frame)
    {
        if (!reg.VarOff.IsConst) return (-1, "iter has to be at a constant offset");
        int off = reg.Off + (int)(long)reg.VarOff.Value;
        int spi = (-off - 1) / 8;
        if (off % 8 != 0 || spi < 0) return (-1, $"cannot pass in iter at an offset={off}");
        return (spi < frame.Stack.Allocated / 8 ? spi : -1, null);
    }

    /// <summary>The slot of the initialized iterator <paramref name="reg"/> points to (is_iter_reg_valid_init), or the kernel's error.</summary>
    int InitializedIter(in RegState reg, FuncState frame)
    {
        var (spi, error) = IterSpi(reg, frame);
        if (error != null || spi < 0 || !frame.Stack.IsIter(spi) || frame.Stack.Spilled[spi].RefObjId == 0)
            throw Err((error != null ? error + "\n" : "") + "expected an initialized iter_num as arg #0");
        return spi;
    }

    /// <summary>True when r1 points to an active iterator (the state at a next() call in a loop that may converge).</summary>
    bool ActiveIterAtR1()
    {
        var reg = Regs[1];
        if (reg.Type != RegType.PtrToStack || !reg.VarOff.IsConst) return false;
        var frame = _cur.Frames[reg.Frame];
        var (spi, _) = IterSpi(reg, frame);
        return spi >= 0 && frame.Stack.IsIter(spi) && frame.Stack.Spilled[spi].Iter == IterState.Active;
    }
}
