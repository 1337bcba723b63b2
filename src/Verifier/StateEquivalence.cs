using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>
/// State pruning (the kernel's <c>states_equal</c>/<c>regsafe</c>/<c>stacksafe</c>): an old,
/// fully explored state subsumes a new one when every live register and stack slot of the new
/// state is within what the old one allowed. Exact mode (loop detection) asks for equality.
/// </summary>
internal sealed class StateEquivalence
{
    readonly ProgramInfo _info;
    readonly Dictionary<int, int> _map = [];
    readonly Dictionary<int, int> _reverse = [];

    readonly bool _usePrecision;
    /// <summary>Ids handed out for new scalars without one, above any id the checker allocates and below the delta flags.</summary>
    const int TmpIdBase = 1 << 28;
    int _tmpId;

    public StateEquivalence(ProgramInfo info, bool usePrecision)
    {
        _info = info;
        _usePrecision = usePrecision;
    }

    /// <summary>
    /// The kernel's RANGE_WITHIN mode (for states still being explored, whose precision marks are not
    /// final): every scalar is compared by range, precise or not.
    /// </summary>
    bool _rangeWithin;

    public bool Equal(VerifierState old, VerifierState cur, bool exact, bool rangeWithin = false)
    {
        _rangeWithin = rangeWithin;
        _map.Clear();
        _reverse.Clear();
        _tmpId = TmpIdBase;
        if (old.Frames.Count != cur.Frames.Count || old.Refs.Count != cur.Refs.Count || old.LockMap != cur.LockMap || old.RcuLock != cur.RcuLock) return false;
        if (old.LockMap >= 0 && !CheckIds(old.LockId, cur.LockId)) return false;
        for (int i = 0; i < old.Refs.Count; i++)
            if (!CheckIds(old.Refs[i].Id, cur.Refs[i].Id)) return false;
        for (int f = cur.Frames.Count - 1; f >= 0; f--)
        {
            var of = old.Frames[f];
            var cf = cur.Frames[f];
            if (of.CallSite != cf.CallSite) return false;
            // func_states_equal's callback_depth rule: a state that had run more bpf_loop iterations
            // from this frame's call has fewer left to explore (at the count it only continues after
            // the call), so it covers no state with iterations still to run.
            if (of.CallbackDepth > cf.CallbackDepth) return false;
            // A caller frame resumes after the call (r0-r5 are written by the return), or, below a
            // callback, at the helper call itself, which reads its arguments again.
            var callee = f == cur.Frames.Count - 1 ? null : cur.Frames[f + 1];
            ushort live = callee == null ? _info.LiveIn[cur.Insn]
                : callee.InCallback ? _info.LiveIn[callee.CallSite]
                : (ushort)(_info.LiveIn[callee.CallSite + 1] & ~BpfAbi.CallerSavedMask | (1 << BpfAbi.FramePointer));
            for (int r = 0; r <= BpfAbi.MaxRegister; r++)
            {
                if ((live & (1 << r)) == 0) continue;
                if (!RegSafe(of.Regs[r], cf.Regs[r], exact)) return false;
            }
            if (!StackSafe(of.Stack, cf.Stack, exact)) return false;
        }
        return true;
    }

    bool CheckIds(int oldId, int curId)
    {
        if (oldId == 0 && curId == 0) return true;
        if (oldId == 0 || curId == 0) return false;
        if (_map.TryGetValue(oldId, out int mapped)) return mapped == curId;
        if (_reverse.ContainsKey(curId)) return false;
        _map[oldId] = curId;
        _reverse[curId] = oldId;
        return true;
    }

    /// <summary>
    /// check_scalar_ids: an old id of 0 relied on no link; a new id of 0 is a link of one, so it gets a
    /// fresh id that no other old id can map to. An old id with a delta must also map its base id the same
    /// way, or an old `r3 = r2 + d` would match a new `r3 = r4 + d` with r4 unrelated to the new r2.
    /// </summary>
    bool CheckScalarIds(int oldId, int curId)
    {
        if (oldId == 0) return true;
        if (curId == 0) curId = ++_tmpId;
        if (!CheckIds(oldId, curId)) return false;
        return (oldId & Checker.LinkedDelta) == 0 || CheckIds(oldId & ~Checker.LinkedDelta, curId & ~Checker.LinkedDelta);
    }

    static bool RangeWithin(in RegState o, in RegState c) =>
        o.Umin <= c.Umin && o.Umax >= c.Umax && o.Smin <= c.Smin && o.Smax >= c.Smax &&
        o.U32Min <= c.U32Min && o.U32Max >= c.U32Max && o.S32Min <= c.S32Min && o.S32Max >= c.S32Max;

    static bool SameBounds(in RegState o, in RegState c) =>
        o.VarOff == c.VarOff && o.Umin == c.Umin && o.Umax == c.Umax && o.Smin == c.Smin && o.Smax == c.Smax &&
        o.U32Min == c.U32Min && o.U32Max == c.U32Max && o.S32Min == c.S32Min && o.S32Max == c.S32Max;

    bool RegSafe(in RegState o, in RegState c, bool exact)
    {
        if (exact)
        {
            if (o.Type != c.Type) return false;
            if (o.Type == RegType.NotInit) return true;
            return SameBounds(o, c) && o.Off == c.Off && o.Aux == c.Aux && o.Frame == c.Frame &&
                   (o.Type == RegType.Scalar ? (o.Id == 0) == (c.Id == 0) && (o.Id & Checker.LinkedDelta) == (c.Id & Checker.LinkedDelta) : CheckIds(o.Id, c.Id)) && CheckIds(o.RefObjId, c.RefObjId);
        }
        if (o.Type == RegType.NotInit) return true;
        if (c.Type != o.Type) return false;
        if (o.Type == RegType.Scalar)
        {
            // No path below the old state needed this value exactly.
            if (!o.Precise && _usePrecision && !_rangeWithin) return true;
            // A link in the old state was relied on (a branch on one copy refined the others), so the new
            // state must have the same link: the same kind of delta (none, 64-bit or 32-bit add) and the same
            // constant, or `r8 = r6 + 7` would be pruned against a verified `r8 = r6 + 5`. A link only in the
            // new state just narrows it.
            if (o.Id != 0 && (o.Id & Checker.LinkedDelta) != (c.Id & Checker.LinkedDelta)) return false;
            if ((o.Id & Checker.LinkedDelta) != 0 && o.Off != c.Off) return false;
            if (!CheckScalarIds(o.Id, c.Id)) return false;
            return RangeWithin(o, c) && o.VarOff.Contains(c.VarOff);
        }
        if (o.Type == RegType.PtrToPacket)
        {
            // At least the old range, so every access safe before is safe now; the at/beyond-end marks only match themselves.
            if (o.Aux < 0 || c.Aux < 0 ? o.Aux != c.Aux : o.Aux > c.Aux) return false;
            return o.Off == c.Off && CheckIds(o.Id, c.Id) && RangeWithin(o, c) && o.VarOff.Contains(c.VarOff);
        }
        return o.Off == c.Off && o.Aux == c.Aux && o.Frame == c.Frame && RangeWithin(o, c) && o.VarOff.Contains(c.VarOff) &&
               CheckIds(o.Id, c.Id) && CheckIds(o.RefObjId, c.RefObjId);
    }

    static RegState? ScalarOfSlot(StackState s, int spi)
    {
        if (s.IsFullSpill(spi)) return s.Spilled[spi].Type == RegType.Scalar ? s.Spilled[spi] : null;
        for (int k = 0; k < 8; k++) if (s.Kind(spi, k) != SlotKind.Misc) return null;
        return RegState.Unknown();
    }

    bool StackSafe(StackState o, StackState c, bool exact)
    {
        int slots = Math.Max(o.Allocated, c.Allocated) / 8;
        for (int spi = 0; spi < slots; spi++)
        {
            if (exact)
            {
                for (int k = 0; k < 8; k++) if (o.Kind(spi, k) != c.Kind(spi, k)) return false;
                if (o.IsSpilled(spi) && !RegSafe(o.Spilled[spi], c.Spilled[spi], true)) return false;
                if (o.IsIter(spi) && !IterSafe(o.Spilled[spi], c.Spilled[spi])) return false;
                if (o.IsDynptr(spi) && !DynptrSafe(o.Spilled[spi], c.Spilled[spi])) return false;
                continue;
            }
            var os = ScalarOfSlot(o, spi);
            var cs = ScalarOfSlot(c, spi);
            if (os != null && cs != null)
            {
                if (!RegSafe(os.Value, cs.Value, false)) return false;
                continue;
            }
            for (int k = 0; k < 8; k++)
            {
                var ok = o.Kind(spi, k);
                var ck = c.Kind(spi, k);
                if (ok == SlotKind.Invalid) continue;
                // Unlike the kernel, old "misc" does not cover new "uninitialised": the emitter must learn of every uninitialised read.
                if (ok == SlotKind.Misc && ck == SlotKind.Zero) continue;
                if (ok != ck) return false;
            }
            if (o.IsSpilled(spi) && c.IsSpilled(spi) && !RegSafe(o.Spilled[spi], c.Spilled[spi], false)) return false;
            if (o.IsIter(spi) && !IterSafe(o.Spilled[spi], c.Spilled[spi])) return false;
            if (o.IsDynptr(spi) && !DynptrSafe(o.Spilled[spi], c.Spilled[spi])) return false;
        }
        return true;
    }

    /// <summary>
    /// stacksafe's STACK_ITER case: the same state and the same reference. The depth is not compared, or a
    /// loop would never converge; it only keeps the infinite-loop check from firing (<see cref="IterDepthsDiffer"/>).
    /// </summary>
    bool IterSafe(in RegState o, in RegState c) => o.Iter == c.Iter && CheckIds(o.RefObjId, c.RefObjId);

    /// <summary>stacksafe's STACK_DYNPTR case: the same kind, the same slot of it, the same reference.</summary>
    bool DynptrSafe(in RegState o, in RegState c) => o.Dynptr == c.Dynptr && o.DynptrFirst == c.DynptrFirst && CheckIds(o.RefObjId, c.RefObjId);

    /// <summary>The kernel's iter_active_depths_differ: an active iterator went further on one path, so the states are no infinite loop.</summary>
    public static bool IterDepthsDiffer(VerifierState old, VerifierState cur)
    {
        for (int f = 0; f < old.Frames.Count && f < cur.Frames.Count; f++)
        {
            var o = old.Frames[f].Stack;
            var c = cur.Frames[f].Stack;
            for (int spi = 0; spi < o.Allocated / 8; spi++)
            {
                if (!o.IsIter(spi) || o.Spilled[spi].Iter != IterState.Active) continue;
                if (!c.IsIter(spi) || c.Spilled[spi].IterDepth != o.Spilled[spi].IterDepth) return true;
            }
        }
        return false;
    }
}
