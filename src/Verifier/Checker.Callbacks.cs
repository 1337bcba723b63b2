using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// Callbacks of bpf_loop and bpf_for_each_map_elem (the kernel's push_callback_call,
/// set_loop_callback_state, set_map_elem_callback_state and the callback half of prepare_func_exit).
/// A helper call that runs a callback queues the callback body as a new frame on top of the caller and
/// continues after the call as if the callback ran zero times; the body's exit returns to the helper
/// call, which queues the next iteration. Iterations stop when a state at the call is within one
/// already seen there (bpf_for_each_map_elem, and bpf_loop with a large count) or, for bpf_loop, after
/// as many iterations as its count can be.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>Queues the callback body of the helper call at <paramref name="idx"/> (push_callback_call).</summary>
    void PushCallback(int idx, int helperId, CallMeta meta)
    {
        var caller = Frame;
        // The iteration count decides how many callback iterations are explored.
        if (helperId == KernelHelpers.LoopId) MarkPrecise(1);
        if (helperId == KernelHelpers.LoopId && (ulong)caller.CallbackDepth >= Regs[1].Umax)
        {
            caller.CallbackDepth = 0;
            if (Log2) _log.AppendLine($"frame{_cur.CurFrame} bpf_loop iteration limit reached");
            return;
        }
        // The kernel's setup_func_entry, shared with local calls: its wording has no " !".
        if (_cur.Frames.Count >= BpfAbi.MaxCallFrames)
            throw Err($"the call stack of {_cur.Frames.Count + 1} frames is too deep");
        var cb = _cur.Clone();
        var callerRegs = cb.Cur.Regs;
        var callee = new FuncState { CallSite = idx, FrameNo = cb.Frames.Count, Subprog = meta.Subprog, InCallback = true };
        if (helperId == KernelHelpers.LoopId)
        {
            // callback(u32 index, void *ctx): the index is an unknown scalar, ctx is bpf_loop's r3.
            callee.Regs[1] = RegState.Unknown();
            callee.Regs[2] = callerRegs[3];
            callee.Regs[2].Precise = false;
        }
        else if (helperId == KernelHelpers.UserRingbufDrainId)
        {
            // set_user_ringbuf_callback_state: callback(const struct bpf_dynptr *sample, void *ctx), ctx is r3.
            callee.Regs[1] = RegState.Pointer(RegType.ConstPtrToDynptr);
            callee.Regs[2] = callerRegs[3];
            callee.Regs[2].Precise = false;
        }
        else if (helperId == KernelHelpers.FindVmaId)
        {
            // set_find_vma_callback_state: callback(task, vma, ctx), trusted pointers to the task and the mapping, ctx is r4.
            callee.Regs[1] = RegState.Pointer(RegType.PtrToBtfId, 0, BtfStruct(KernelStruct.TaskStruct));
            callee.Regs[2] = RegState.Pointer(RegType.PtrToBtfId, 0, BtfStruct(KernelStruct.VmAreaStruct));
            callee.Regs[3] = callerRegs[4];
            callee.Regs[3].Precise = false;
        }
        else
        {
            // callback(map, key, value, ctx): pointers into the element being visited, ctx is r3.
            callee.Regs[1] = RegState.Pointer(RegType.ConstPtrToMap, 0, meta.MapIndex);
            callee.Regs[2] = RegState.Pointer(RegType.PtrToMapKey, 0, meta.MapIndex);
            callee.Regs[3] = RegState.Pointer(RegType.PtrToMapValue, 0, meta.MapIndex);
            callee.Regs[4] = callerRegs[3];
            callee.Regs[4].Precise = false;
        }
        callee.Regs[10] = RegState.Pointer(RegType.PtrToStack);
        callee.Regs[10].Frame = callee.FrameNo;
        cb.Cur.CallbackDepth++;
        cb.Frames.Add(callee);
        cb.CallbackUnrollDepth++;
        cb.Insn = _info.SubprogStarts[meta.Subprog];
        caller.CallbackDepth = 0;
        if (Log2) _log.AppendLine($"{idx}: queued callback {FuncName(meta.Subprog)} (frame{callee.FrameNo}) of {Runtime.ProgramTypes.BaseFuncProto.Display(helperId)}");
        Push(cb);
    }

    /// <summary>
    /// bpf_timer_set_callback's callback (push_async_cb with set_timer_callback_state): it runs later, on its own, so
    /// it is verified as a separate path whose only frame is the callback, entered with
    /// <c>(map, key, value)</c> of the timer's map; the caller continues after the call at once.
    /// </summary>
    void PushAsyncCallback(int idx, CallMeta meta)
    {
        var callee = new FuncState { CallSite = -1, FrameNo = 0, Subprog = meta.Subprog, InAsyncCallback = true };
        callee.Regs[1] = RegState.Pointer(RegType.ConstPtrToMap, 0, meta.MapIndex);
        callee.Regs[2] = RegState.Pointer(RegType.PtrToMapKey, 0, meta.MapIndex);
        callee.Regs[3] = RegState.Pointer(RegType.PtrToMapValue, 0, meta.MapIndex);
        callee.Regs[10] = RegState.Pointer(RegType.PtrToStack);
        var cb = new VerifierState { Insn = _info.SubprogStarts[meta.Subprog] };
        cb.Frames.Add(callee);
        if (Log2) _log.AppendLine($"{idx}: queued async callback {FuncName(meta.Subprog)} of {SkLookupFuncProto.Display(KernelHelpers.TimerSetCallbackId)}");
        Push(cb);
    }

    /// <summary>The exit of a callback body: r0 within [0, 1], then back to the helper call for the next iteration.</summary>
    void ExitCallback(FuncState callee)
    {
        var r0 = callee.Regs[0];
        if (!r0.IsScalar) throw Err("R0 not a scalar value");
        MarkPrecise(0);
        if (r0.Smin < 0 || r0.Smax > 1) throw Err(InvalidScalar("At callback return", "R0", r0, 0, 1));
        var h = _cur.History;
        if (h.Count > 0) h[^1] = h[^1] with { Flags = h[^1].Flags | HistFlags.CallbackExit };
        _cur.Frames.RemoveAt(_cur.Frames.Count - 1);
        _cur.Insn = callee.CallSite;
        if (Log2) _log.AppendLine($"returning from callback to the call at {callee.CallSite}");
        if (PreviousEntry(callee.CallSite) is { } prev) Widen(prev);
    }

    /// <summary>A checkpoint at the helper call (or may_goto) still being explored, with the same frames, other than <paramref name="skip"/>: the previous iteration (find_prev_entry).</summary>
    VerifierState? PreviousEntry(int callSite, VerifierState? skip = null)
    {
        if (!_explored.TryGetValue(callSite, out var list)) return null;
        for (int i = list.Count - 1; i >= 0; i--)
        {
            var st = list[i];
            if (st == skip || st.Branches == 0 || st.Frames.Count != _cur.Frames.Count) continue;
            bool same = true;
            for (int f = 0; f < st.Frames.Count && same; f++) same = st.Frames[f].CallSite == _cur.Frames[f].CallSite;
            if (same) return st;
        }
        return null;
    }

    /// <summary>
    /// The kernel's widen_imprecise_scalars for callback loops: every scalar, in a register or spilled,
    /// that changed since the previous iteration and that no path explored so far needed exactly (not
    /// precise in either state) becomes unknown, so that a counter kept in the callback context converges
    /// instead of unrolling. A scalar a later path needs is marked precise in the checkpoints it was
    /// computed through, so the next iteration keeps it exact, as the kernel does.
    /// </summary>
    void Widen(VerifierState prev)
    {
        for (int f = 0; f < _cur.Frames.Count; f++)
        {
            var of = prev.Frames[f];
            var cf = _cur.Frames[f];
            for (int r = 0; r < 10; r++) WidenReg(of.Regs[r], ref cf.Regs[r]);
            int slots = Math.Min(of.Stack.Allocated, cf.Stack.Allocated) / 8;
            for (int spi = 0; spi < slots; spi++)
                if (of.Stack.IsSpilled(spi) && cf.Stack.IsSpilled(spi)) WidenReg(of.Stack.Spilled[spi], ref cf.Stack.Spilled[spi]);
        }
    }

    void WidenReg(in RegState old, ref RegState cur)
    {
        if (!old.IsScalar || !cur.IsScalar) return;
        if (_precision && (old.Precise || cur.Precise)) return;
        if (old.VarOff == cur.VarOff && old.Umin == cur.Umin && old.Umax == cur.Umax && old.Smin == cur.Smin && old.Smax == cur.Smax &&
            old.U32Min == cur.U32Min && old.U32Max == cur.U32Max && old.S32Min == cur.S32Min && old.S32Max == cur.S32Max) return;
        cur = RegState.Unknown();
    }

    /// <summary>The kernel's verbose_invalid_scalar: bounds that are unlimited are left out.</summary>
    static string InvalidScalar(string where, string reg, in RegState r, int min, int max)
    {
        string has = (r.Smin > long.MinValue ? $" smin={r.Smin}" : "") + (r.Smax < long.MaxValue ? $" smax={r.Smax}" : "");
        return $"{where} the register {reg} has{(has.Length == 0 ? " unknown scalar value" : has)} should have been in [{min}, {max}]";
    }

    string FuncName(int subprog)
    {
        int start = _info.SubprogStarts[subprog];
        return _opt.FuncInfo != null && _opt.FuncInfo.TryGetValue(start, out var name) ? name : $"at {start}";
    }
}
