using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>
/// Precision tracking (the kernel's mark_chain_precision, backtrack_insn and propagate_precision).
/// Scalars start imprecise: at a checkpoint, an old imprecise scalar matches any new scalar. When a
/// scalar's value decides safety (a pointer offset, a helper's size or nullable argument, a decided
/// branch, the exit code, a divisor the JIT relies on, a zero stored to the stack), the path is walked
/// backwards through the instructions it executed, from checkpoint to checkpoint, and every register
/// or spilled stack slot the value came from is marked precise in those checkpoints. When a path is
/// pruned by an old state, the old state's precise marks are backtracked into the pruned path's
/// checkpoints in the same way. Where the walk meets what it does not model (a frame boundary, an
/// atomic fetch from a tracked slot), every scalar of the path's checkpoints becomes precise: slower
/// pruning, never a wrong one.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>Records the instruction about to run on the current path.</summary>
    void RecordHistory(int idx) => _cur.History.Add(new HistEntry(idx, (byte)_cur.CurFrame));

    /// <summary>Adds stack effects to the history entry of the instruction running now.</summary>
    void NoteStack(HistFlags flags, int slotFrame, int spi, int spillReg = -1)
    {
        var h = _cur.History;
        if (h.Count == 0) return;
        h[^1] = h[^1] with { Flags = h[^1].Flags | flags, SlotFrame = (byte)slotFrame, Spi = (byte)spi, SpillReg = (sbyte)spillReg };
    }

    /// <summary>Records which registers a conditional jump's refinement reaches through linked ids (collect_linked_regs).</summary>
    void NoteLinkedJump(Instruction ins)
    {
        var h = _cur.History;
        if (h.Count == 0) return;
        int frame = _cur.CurFrame;
        var regs = Regs;
        ushort mask = 0;
        bool elsewhere = false;
        foreach (int r in ins.SourceIsReg ? [ins.Dst, ins.Src] : new[] { ins.Dst })
        {
            int baseId = regs[r].Id & ~LinkedDelta;
            if (!regs[r].IsScalar || baseId == 0) continue;
            for (int f = 0; f < _cur.Frames.Count; f++)
            {
                var fr = _cur.Frames[f];
                for (int q = 0; q < BpfAbi.RegisterCount; q++)
                {
                    if (!fr.Regs[q].IsScalar || (fr.Regs[q].Id & ~LinkedDelta) != baseId) continue;
                    if (f == frame) mask |= (ushort)(1 << q);
                    else elsewhere = true;
                }
                for (int spi = 0; spi < fr.Stack.Allocated / 8; spi++)
                    if (fr.Stack.IsSpilled(spi) && fr.Stack.Spilled[spi].IsScalar && (fr.Stack.Spilled[spi].Id & ~LinkedDelta) == baseId) elsewhere = true;
            }
        }
        if (mask == 0 && !elsewhere) return;
        h[^1] = h[^1] with { Flags = h[^1].Flags | (elsewhere ? HistFlags.LinkedElsewhere : 0), LinkedRegs = mask };
    }

    /// <summary>Register <paramref name="regno"/> of the current frame decides safety here: mark its sources precise.</summary>
    void MarkPrecise(int regno)
    {
        if (!_precision || !Regs[regno].IsScalar) return;
        var bt = new BacktrackSet();
        bt.SetReg(_cur.CurFrame, regno);
        MarkChain(bt, skipCurrent: true);
    }

    /// <summary>The spilled scalar at (<paramref name="frame"/>, <paramref name="spi"/>) decides safety here.</summary>
    void MarkSlotPrecise(int frame, int spi)
    {
        if (!_precision) return;
        var bt = new BacktrackSet();
        bt.SetSlot(frame, spi);
        MarkChain(bt, skipCurrent: true);
    }

    /// <summary>A path pruned by <paramref name="old"/> relies on everything old relied on (propagate_precision).</summary>
    void PropagatePrecision(VerifierState old)
    {
        if (!_precision) return;
        var bt = new BacktrackSet();
        for (int f = 0; f < old.Frames.Count && f < BpfAbi.MaxCallFrames; f++)
        {
            var of = old.Frames[f];
            for (int r = 0; r < 10; r++)
                if (of.Regs[r].IsScalar && of.Regs[r].Precise) bt.SetReg(f, r);
            for (int spi = 0; spi < of.Stack.Allocated / 8; spi++)
                if (of.Stack.IsSpilled(spi) && of.Stack.Spilled[spi].IsScalar && of.Stack.Spilled[spi].Precise) bt.SetSlot(f, spi);
        }
        if (!bt.Empty) MarkChain(bt, skipCurrent: false);
    }

    void MarkChain(BacktrackSet bt, bool skipCurrent)
    {
        // The current state is not marked (as in the kernel): only checkpoints are compared against, and a
        // mark left in the current state would reach a checkpoint taken later without the walk from there
        // that earns it, so that walk would stop early and miss what the instructions in between added
        // (a jump between two registers refining one from the other).
        DropNonScalars(_cur, bt);
        if (bt.Empty) return;
        var st = _cur;
        int i = st.History.Count - 1 - (skipCurrent ? 1 : 0);
        int frame = _cur.CurFrame;
        while (true)
        {
            for (; i >= 0; i--)
            {
                var e = st.History[i];
                bool ok = e.Frame == frame ? Backtrack(e, bt)
                    : e.Frame == frame + 1 ? IntoCallee(e, bt, frame)
                    : e.Frame == frame - 1 && OutOfCallee(e, bt, frame);
                if (!ok)
                {
                    MarkAllPrecise();
                    return;
                }
                frame = e.Frame;
                if (bt.Empty) return;
            }
            var parent = st.Parent;
            if (parent == null) return;
            if (parent.CurFrame != frame)
            {
                MarkAllPrecise();
                return;
            }
            Apply(parent, bt, stopAtPrecise: true);
            if (bt.Empty) return;
            st = parent;
            i = st.History.Count - 1;
        }
    }

    /// <summary>
    /// Walking back over a return into the callee's exit: a subprogram's r0 became the caller's r0; a
    /// callback's return leaves the caller's registers as they were. The caller's r6-r9 and stack stay tracked.
    /// </summary>
    bool IntoCallee(HistEntry e, BacktrackSet bt, int caller)
    {
        if (!_insns[e.Insn].IsExit || e.Frame >= BpfAbi.MaxCallFrames) return false;
        if ((e.Flags & HistFlags.CallbackExit) == 0 && bt.Reg(caller, 0))
        {
            bt.ClearReg(caller, 0);
            bt.SetReg(e.Frame, 0);
        }
        return true;
    }

    /// <summary>
    /// Walking back over the call that entered the callee: its argument registers came from the caller
    /// (r1-r5 of a bpf-to-bpf call; bpf_loop's r2 and for_each_map_elem's r4 are the helper's r3).
    /// </summary>
    bool OutOfCallee(HistEntry e, BacktrackSet bt, int callee)
    {
        var ins = _insns[e.Insn];
        int caller = e.Frame;
        ushort regs = bt.Regs[callee];
        bt.Regs[callee] = 0;
        bt.Slots[callee] = 0;
        if (ins.IsCall && ins.Src == (byte)CallKind.Local)
        {
            for (int r = BpfAbi.FirstArgRegister; r <= BpfAbi.LastArgRegister; r++) if ((regs & (1 << r)) != 0) bt.SetReg(caller, r);
            return (regs & ~0b111110) == 0;
        }
        if (!ProgramInfo.IsCallbackCall(ins)) return false;
        // The callback's ctx register and the caller's register it came from.
        var (ctxReg, callerCtx) = ins.Imm switch
        {
            Runtime.KernelHelpers.LoopId or Runtime.KernelHelpers.UserRingbufDrainId => (2, 3),
            Runtime.KernelHelpers.FindVmaId => (3, 4),
            _ => (4, 3),
        };
        if ((regs & (1 << ctxReg)) != 0) bt.SetReg(caller, callerCtx);
        return true;
    }

    /// <summary>Registers and slots of the set that hold no scalar in the current state leave it.</summary>
    static void DropNonScalars(VerifierState st, BacktrackSet bt) => Walk(st, bt, mark: false, stopAtPrecise: false);

    /// <summary>
    /// A new checkpoint starts with every scalar imprecise (the kernel's mark_all_scalars_imprecise on the
    /// current state before copying it): its marks must come from walks that pass through it.
    /// </summary>
    static void ForgetPrecision(VerifierState st) => st.ForEachReg((ref RegState r) => r.Precise = false);

    /// <summary>Marks the set's scalars precise in <paramref name="st"/>; registers and slots that hold no scalar there leave the set.</summary>
    /// <remarks>
    /// Precise marks are never copied forward (the current state is never marked, and a checkpoint
    /// starts imprecise), so a scalar precise in a checkpoint was marked by a walk that went on from there.
    /// In a checkpoint, a scalar already precise has had its sources marked when it became so: the
    /// walk stops following it there (as the kernel's does), which keeps backtracking linear.
    /// </remarks>
    static void Apply(VerifierState st, BacktrackSet bt, bool stopAtPrecise) => Walk(st, bt, mark: true, stopAtPrecise);

    /// <summary>
    /// Walks the set over <paramref name="st"/>: what holds no scalar there (or, with <paramref name="stopAtPrecise"/>,
    /// is precise already) leaves the set; with <paramref name="mark"/> the rest is marked precise.
    /// </summary>
    static void Walk(VerifierState st, BacktrackSet bt, bool mark, bool stopAtPrecise)
    {
        for (int f = 0; f < BpfAbi.MaxCallFrames; f++)
        {
            if (bt.Regs[f] == 0 && bt.Slots[f] == 0) continue;
            if (f >= st.Frames.Count)
            {
                bt.Regs[f] = 0;
                bt.Slots[f] = 0;
                continue;
            }
            var fr = st.Frames[f];
            for (int r = 0; r < BpfAbi.RegisterCount; r++)
            {
                if (!bt.Reg(f, r)) continue;
                if (!fr.Regs[r].IsScalar || (stopAtPrecise && fr.Regs[r].Precise)) bt.ClearReg(f, r);
                else if (mark) fr.Regs[r].Precise = true;
            }
            for (int spi = 0; spi < 64; spi++)
            {
                if (!bt.Slot(f, spi)) continue;
                bool scalar = spi < fr.Stack.Allocated / 8 && fr.Stack.IsSpilled(spi) && fr.Stack.Spilled[spi].IsScalar;
                if (!scalar || (stopAtPrecise && fr.Stack.Spilled[spi].Precise)) bt.ClearSlot(f, spi);
                else if (mark) fr.Stack.Spilled[spi].Precise = true;
            }
        }
    }

    /// <summary>Steps the set back over one instruction (backtrack_insn); false when the instruction is beyond this model.</summary>
    bool Backtrack(HistEntry e, BacktrackSet bt)
    {
        var ins = _insns[e.Insn];
        int f = e.Frame;
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                if (!bt.Reg(f, ins.Dst)) return true;
                if (ins.AluOp == AluOp.Mov)
                {
                    bt.ClearReg(f, ins.Dst);
                    if (ins.SourceIsReg) bt.SetReg(f, ins.Src);
                }
                else if (ins.SourceIsReg && ins.AluOp is not (AluOp.Neg or AluOp.End)) bt.SetReg(f, ins.Src);
                return true;
            case InstructionClass.Ldx:
                if (!bt.Reg(f, ins.Dst)) return true;
                bt.ClearReg(f, ins.Dst);
                if ((e.Flags & HistFlags.StackFill) != 0) bt.SetSlot(e.SlotFrame, e.Spi);
                return true;
            case InstructionClass.St or InstructionClass.Stx:
                {
                    bool slot = (e.Flags & HistFlags.StackStore) != 0 && bt.Slot(e.SlotFrame, e.Spi);
                    if (ins.MemMode == MemMode.Atomic)
                    {
                        int fetched = (AtomicOp)ins.Imm == AtomicOp.CmpXchg ? 0 : (ins.Imm & 1) != 0 ? ins.Src : -1;
                        return !slot && !(fetched >= 0 && bt.Reg(f, fetched));
                    }
                    if (!slot) return true;
                    bt.ClearSlot(e.SlotFrame, e.Spi);
                    if (e.SpillReg >= 0) bt.SetReg(f, e.SpillReg);
                    return true;
                }
            case InstructionClass.Ld:
                bt.ClearReg(f, ins.Dst);
                return true;
            default:
                if (ins.IsCall)
                {
                    // A helper's result depends on nothing tracked here; r1-r5 are dead after it.
                    // A local call's entry crosses frames, which the caller of this method caught.
                    for (int r = 0; r < BpfAbi.CallerSavedCount; r++) bt.ClearReg(f, r);
                    return true;
                }
                if (ins.IsExit || ins.IsUnconditionalJump) return true;
                if (ins.SourceIsReg && (bt.Reg(f, ins.Dst) || bt.Reg(f, ins.Src)))
                {
                    bt.SetReg(f, ins.Dst);
                    bt.SetReg(f, ins.Src);
                }
                // The comparison refined every register linked to the compared ones: if any of them
                // matters, the comparison and all of them do.
                if ((bt.Regs[f] & e.LinkedRegs) != 0 || ((e.Flags & HistFlags.LinkedElsewhere) != 0 && AnythingElsewhere(bt, f)))
                {
                    bt.Regs[f] |= e.LinkedRegs;
                    bt.SetReg(f, ins.Dst);
                    if (ins.SourceIsReg) bt.SetReg(f, ins.Src);
                }
                return true;
        }
    }

    static bool AnythingElsewhere(BacktrackSet bt, int frame)
    {
        for (int f = 0; f < BpfAbi.MaxCallFrames; f++)
            if (bt.Slots[f] != 0 || (f != frame && bt.Regs[f] != 0)) return true;
        return false;
    }

    /// <summary>The fallback: every scalar of the current path and its checkpoints is precise (mark_all_scalars_precise).</summary>
    void MarkAllPrecise()
    {
        // The current state is skipped, as the kernel skips it: its marks would leak into later checkpoints.
        for (var st = _cur.Parent; st != null; st = st.Parent)
        {
            if (st.AllPrecise) break;
            st.AllPrecise = true;
            foreach (var fr in st.Frames)
            {
                for (int r = 0; r < BpfAbi.RegisterCount; r++) if (fr.Regs[r].IsScalar) fr.Regs[r].Precise = true;
                for (int spi = 0; spi < fr.Stack.Allocated / 8; spi++)
                    if (fr.Stack.IsSpilled(spi) && fr.Stack.Spilled[spi].IsScalar) fr.Stack.Spilled[spi].Precise = true;
            }
        }
    }
}
