using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>Jumps, conditional jumps, calls and exit (check_cond_jmp_op, check_func_call, prepare_func_exit).</summary>
internal sealed partial class Checker
{
    bool CheckJmpClass(Instruction ins, int idx)
    {
        // Every instruction of the class counts, calls and exits too (do_check_insn's jmps_processed).
        _jmpsProcessed++;
        if (ins.IsExit) return CheckExit(idx);
        if (ins.IsCall)
        {
            if (ins.Src == (byte)CallKind.Local) { CallLocal(ins, idx); return true; }
            if (ins.Src == (byte)CallKind.Kfunc) { CheckKfuncCall(ins, idx); return true; }
            if (_cur.LockMap >= 0 && ins.Imm != KernelHelpers.SpinUnlockId)
                throw Err("function calls are not allowed while holding a lock");
            CheckHelperCall(ins, idx);
            _cur.Insn = idx + 1;
            return true;
        }
        if (ins.IsUnconditionalJump)
        {
            _cur.Insn = idx + ins.BranchOffset + 1;
            return true;
        }
        if (ins.IsMayGoto) return CheckMayGoto(ins, idx);
        return CheckCondJmp(ins, idx);
    }

    /// <summary>
    /// may_goto (check_cond_jmp_op's BPF_JCOND): both sides are explored. This path takes the jump (the
    /// budget is spent); the fall-through (another iteration) is queued one may_goto deeper, with the
    /// imprecise scalars that changed since the previous visit of this instruction widened, so a loop
    /// converges when a deeper state falls within one still being explored (<see cref="IsStateVisited"/>).
    /// </summary>
    bool CheckMayGoto(Instruction ins, int idx)
    {
        var fall = _cur.Clone();
        fall.Insn = idx + 1;
        fall.MayGotoDepth++;
        // The checkpoint just made here for this visit is this iteration itself; the one before it is the previous iteration.
        if (PreviousEntry(idx, skip: _cur.Parent) is { } prev)
        {
            var saved = _cur;
            _cur = fall;
            Widen(prev);
            _cur = saved;
        }
        Push(fall);
        _cur.Insn = idx + ins.Offset + 1;
        return true;
    }

    /// <summary>
    /// Both sides are explored unless <see cref="Branches.IsTaken"/> decides the branch, as in the kernel: a
    /// refinement that contradicts the bounds does not drop its side (see <see cref="RefineSide"/>).
    /// </summary>
    bool CheckCondJmp(Instruction ins, int idx)
    {
        bool is32 = ins.Class == InstructionClass.Jmp32;
        var op = ins.JmpOp;
        int target = idx + ins.Offset + 1;
        CheckRead(ins.Dst);
        RegState src;
        if (ins.SourceIsReg)
        {
            CheckRead(ins.Src);
            src = Regs[ins.Src];
        }
        else src = RegState.Known((ulong)(long)ins.Imm);
        var dst = Regs[ins.Dst];
        if ((dst.IsScalar && dst.Id != 0) || (ins.SourceIsReg && src.IsScalar && src.Id != 0)) NoteLinkedJump(ins);
        int pred = Branches.IsTaken(dst, src, op, is32);
        if (pred >= 0) MarkBranchPrecise(ins);
        if (pred == 1) { _cur.Insn = target; return true; }
        if (pred == 0) { _cur.Insn = idx + 1; return true; }

        // The copies the refinement reaches are gathered before the state splits, so an id dropped for want
        // of room is dropped on both sides (collect_linked_regs before push_stack).
        var linked = new List<LinkedCopy>(4); // a capacity: see ProgramLoader.Link's list
        if (ins.SourceIsReg && Regs[ins.Src] is { IsScalar: true, Id: not 0 } s0) CollectLinked(s0.Id, linked);
        if (Regs[ins.Dst] is { IsScalar: true, Id: not 0 } d0) CollectLinked(d0.Id, linked);
        var other = _cur.Clone();
        other.Insn = target;
        _cur.Insn = idx + 1;
        if (dst.IsScalar && src.IsScalar)
        {
            RefineSide(other, ins, op, is32, linked);
            RefineSide(_cur, ins, Branches.Reverse(op), is32, linked);
        }
        // A NULL check of a nullable pointer decides its type on both sides, for every copy sharing its id.
        if (!is32 && !ins.SourceIsReg && ins.Imm == 0 && op is JmpOp.Jeq or JmpOp.Jne && dst.IsNullable)
        {
            MarkPtrOrNull(other, dst, isNull: op == JmpOp.Jeq);
            MarkPtrOrNull(_cur, dst, isNull: op == JmpOp.Jne);
        }
        if (ins.SourceIsReg && !is32) MatchPacketPointers(ins, op, dst, src, _cur, other);
        // Two pointers compared equal where one may be NULL and the other may not: on the equal side the
        // nullable one is not NULL either (the kernel's mark_ptr_not_null_reg, for that register alone).
        if (!is32 && ins.SourceIsReg && op is JmpOp.Jeq or JmpOp.Jne && dst.IsPointer && src.IsPointer && dst.IsNullable != src.IsNullable)
        {
            var eq = op == JmpOp.Jeq ? other : _cur;
            MarkPtrNotNull(ref eq.Cur.Regs[dst.IsNullable ? ins.Dst : ins.Src]);
        }
        Push(other);
        return true;
    }

    /// <summary>
    /// try_match_pkt_pointers: a 64-bit compare of a packet pointer with the packet's end proves, on the side where the
    /// pointer is not past the end, that the bytes before it are in the packet (<see cref="FindGoodPacketPointers"/>),
    /// and marks the pointer at or beyond the end on the other side. Operands may come in either order.
    /// </summary>
    void MatchPacketPointers(Instruction ins, JmpOp op, in RegState dst, in RegState src, VerifierState fall, VerifierState taken)
    {
        bool pktEnd = dst.Type == RegType.PtrToPacket && src.Type == RegType.PtrToPacketEnd;
        bool endPkt = dst.Type == RegType.PtrToPacketEnd && src.Type == RegType.PtrToPacket;
        if (!pktEnd && !endPkt) return;
        // In the kernel's words: find_good_pkt_pointers(side, pkt, right_open) and mark_pkt_end(side, reg, beyond).
        var (pkt, reg) = pktEnd ? (dst, ins.Dst) : (src, ins.Src);
        switch (op)
        {
            case JmpOp.Jgt when pktEnd: FindGoodPacketPointers(fall, pkt, false); MarkPacketEnd(taken, reg, true); break;
            case JmpOp.Jgt: FindGoodPacketPointers(taken, pkt, true); MarkPacketEnd(fall, reg, false); break;
            case JmpOp.Jge when pktEnd: FindGoodPacketPointers(fall, pkt, true); MarkPacketEnd(taken, reg, false); break;
            case JmpOp.Jge: FindGoodPacketPointers(taken, pkt, false); MarkPacketEnd(fall, reg, true); break;
            case JmpOp.Jlt when pktEnd: FindGoodPacketPointers(taken, pkt, true); MarkPacketEnd(fall, reg, false); break;
            case JmpOp.Jlt: FindGoodPacketPointers(fall, pkt, false); MarkPacketEnd(taken, reg, true); break;
            case JmpOp.Jle when pktEnd: FindGoodPacketPointers(taken, pkt, false); MarkPacketEnd(fall, reg, true); break;
            case JmpOp.Jle: FindGoodPacketPointers(fall, pkt, true); MarkPacketEnd(taken, reg, false); break;
        }
    }

    /// <summary>The kernel's MAX_PACKET_OFF: no range is derived for a pointer that may be this far into the packet.</summary>
    const int MaxPacketOff = 0xffff;

    /// <summary>What a strict compare (<c>pkt &lt; pkt_end</c>) adds to the range beyond the pointer's offset.</summary>
    const int PacketRightOpenAdjust = 1;

    /// <summary>
    /// find_good_pkt_pointers: on <paramref name="st"/>, <paramref name="pkt"/> (its fixed offset) is at most the end,
    /// or strictly before it when <paramref name="rightOpen"/>; every packet pointer with its id, in every frame and
    /// spilled slot, may read that many bytes from its base.
    /// </summary>
    static void FindGoodPacketPointers(VerifierState st, RegState pkt, bool rightOpen)
    {
        if (pkt.Off < 0 || (pkt.Off == 0 && rightOpen)) return;
        if (pkt.Umax > MaxPacketOff || pkt.Umax + (ulong)pkt.Off > MaxPacketOff) return;
        int range = pkt.Off + (rightOpen ? PacketRightOpenAdjust : 0);
        int id = pkt.Id;
        st.ForEachReg((ref RegState r) =>
        {
            if (r.Type == RegType.PtrToPacket && r.Id == id) r.Aux = Math.Max(r.Aux, range);
        });
    }

    /// <summary>mark_pkt_end: the compared pointer (current frame) is at the end, or beyond it.</summary>
    static void MarkPacketEnd(VerifierState st, int regno, bool beyond)
    {
        ref RegState r = ref st.Cur.Regs[regno];
        if (r.Type != RegType.PtrToPacket) return;
        r.Aux = beyond ? Branches.BeyondPacketEnd : Branches.AtPacketEnd;
    }

    /// <summary>The values compared decided the branch: they must stay as they are on pruned paths.</summary>
    void MarkBranchPrecise(Instruction ins)
    {
        MarkPrecise(ins.Dst);
        if (ins.SourceIsReg) MarkPrecise(ins.Src);
    }

    /// <summary>
    /// Refines the registers of one side. A side whose refined bounds contradict one another cannot run, but
    /// Linux 6.18 still explores it (reg_bounds_sanity_check does not prune): it reports the violation, forgets
    /// the contradictory ranges and keeps the refined tnum, without deriving ranges from it again. BpfJit does the
    /// same so that an instruction the kernel refuses on such a side is refused here too (a constant tnum with
    /// unbounded ranges taints a pointer it is added to). No execution reaches that side, so the state it is
    /// checked with cannot make the engines unsafe; the checks on it only add refusals.
    /// </summary>
    static void RefineSide(VerifierState st, Instruction ins, JmpOp op, bool is32, List<LinkedCopy> linked)
    {
        var regs = st.Cur.Regs;
        var d = regs[ins.Dst];
        var s = ins.SourceIsReg ? regs[ins.Src] : RegState.Known((ulong)(long)ins.Imm);
        Branches.Refine(ref d, ref s, op, is32);
        ForgetContradictoryBounds(ref d);
        ForgetContradictoryBounds(ref s);
        // The kernel's order: the source's copies first, then the destination's, as the destination then is. When
        // both are copies of one value (one link), the source's refinement reaches every copy, the destination too.
        regs[ins.Dst] = d;
        if (ins.SourceIsReg)
        {
            regs[ins.Src] = s;
            SyncLinked(st, s, linked);
        }
        SyncLinked(st, regs[ins.Dst], linked);
    }

    /// <summary>A register (<see cref="Reg"/> ≥ 0) or spilled slot (<see cref="Spi"/>) of a frame that a compare's refinement reaches.</summary>
    readonly record struct LinkedCopy(int Frame, int Reg, int Spi);

    /// <summary>The kernel's bound on the copies one compare records and refines (LINKED_REGS_MAX).</summary>
    const int MaxLinkedCopies = 6;

    /// <summary>
    /// Appends the scalars sharing base id <paramref name="id"/> (collect_linked_regs): in each frame from the
    /// current one down, the registers live there, then every spilled slot. A compare of two registers collects
    /// for each of them, so copies of one value are listed twice. A copy that finds the list full loses its id:
    /// it is no longer linked, on either side of the branch, and the refinement does not reach it.
    /// </summary>
    void CollectLinked(int id, List<LinkedCopy> linked)
    {
        int baseId = id & ~LinkedDelta;
        for (int f = _cur.CurFrame; f >= 0; f--)
        {
            var fr = _cur.Frames[f];
            // A frame below the current one is at its call instruction.
            ushort live = _info.LiveIn[f == _cur.CurFrame ? _cur.Insn : _cur.Frames[f + 1].CallSite];
            for (int r = 0; r < 10; r++)
                if ((live & (1 << r)) != 0) Collect(ref fr.Regs[r], new LinkedCopy(f, r, -1));
            for (int spi = 0; spi < fr.Stack.Allocated / 8; spi++)
                if (fr.Stack.IsSpilled(spi)) Collect(ref fr.Stack.Spilled[spi], new LinkedCopy(f, -1, spi));
        }

        void Collect(ref RegState r, LinkedCopy at)
        {
            if (!r.IsScalar || (r.Id & ~LinkedDelta) != baseId) return;
            if (linked.Count < MaxLinkedCopies) linked.Add(at);
            else
            {
                r.Id = 0;
                r.Off = 0;
            }
        }
    }

    /// <summary>
    /// When the ranges contradict one another or a constant tnum (the kernel's reg_bounds_sanity_check), makes
    /// the ranges unbounded and keeps the tnum (__mark_reg_unbounded): the register is not synced again, so a
    /// constant tnum stays next to unbounded ranges until an ALU operation recomputes them.
    /// </summary>
    static void ForgetContradictoryBounds(ref RegState r)
    {
        if (r.BoundsSane) return;
        r.Unbound64();
        r.Unbound32();
    }

    /// <summary>
    /// Copies refined bounds to every scalar sharing the base id (sync_linked_regs): a copy that differs
    /// by a constant gets the bounds moved by the difference of the deltas, zero-extended when either was
    /// linked by a 32-bit add. A 32-bit-linked and a 64-bit-linked copy are not related by a constant
    /// (one wraps at 2^32, the other does not), so neither refines the other.
    /// </summary>
    static void SyncLinked(VerifierState st, RegState known, List<LinkedCopy> linked)
    {
        int baseId = known.Id & ~LinkedDelta;
        if (baseId == 0 || !known.IsScalar) return;
        int knownFlags = known.Id & LinkedDelta, knownDelta = Delta(known);
        foreach (var at in linked)
        {
            var fr = st.Frames[at.Frame];
            ref RegState r = ref at.Reg >= 0 ? ref fr.Regs[at.Reg] : ref fr.Stack.Spilled[at.Spi];
            if (!r.IsScalar || (r.Id & ~LinkedDelta) != baseId) continue;
            int id = r.Id, flags = id & LinkedDelta, delta = Delta(r);
            if ((flags ^ knownFlags) == LinkedDelta) continue;
            bool precise = r.Precise;
            if (delta == knownDelta) r = known;
            else
            {
                // r = known + (r.delta - known.delta), the difference computed without overflow.
                var v = known;
                ScalarAlu.Apply(ref v, RegState.Known((ulong)((long)delta - knownDelta)), AluOp.Add, alu32: false);
                if (((flags | knownFlags) & LinkedDelta32) != 0)
                {
                    v.ZeroExtend32();
                    v.Sync();
                }
                r = v;
            }
            r.Id = id;
            r.Off = delta;
            r.Precise = precise;
        }
    }

    /// <summary>
    /// The non-NULL type of a nullable pointer (the kernel's mark_ptr_not_null_reg): a map-in-map's element is
    /// its inner map, a map pointer typed by the template (inner_map_meta); a SOCKMAP/SOCKHASH value is a
    /// socket. The id stays.
    /// </summary>
    void MarkPtrNotNull(ref RegState r)
    {
        if (r.Type == RegType.PtrToMapValueOrNull && _innerMeta.TryGetValue(r.Aux, out int meta))
            r = RegState.Pointer(RegType.ConstPtrToMap, 0, meta) with { Id = r.Id };
        else if (r.Type == RegType.PtrToMapValueOrNull && _maps[r.Aux].IsSockMap) r.Type = RegType.PtrToSocket;
        else r.Type = RegTypeNames.NonNull(r.Type);
    }

    void MarkPtrOrNull(VerifierState st, RegState ptr, bool isNull)
    {
        int id = ptr.Id;
        if (id == 0) return;
        if (isNull && ptr.RefObjId != 0 && ptr.RefObjId == id)
            st.Refs.RemoveAll(r => r.Id == id);
        var maps = _maps;
        st.ForEachReg((ref RegState r) =>
        {
            if (!r.IsNullable || r.Id != id) return;
            if (isNull)
            {
                r = RegState.Known(0);
                return;
            }
            MarkPtrNotNull(ref r);
            // A value that may hold a bpf_spin_lock keeps its id: lock and unlock must use the same element.
            if (!(r.Type == RegType.PtrToMapValue && maps[r.Aux].SpinLockOffset >= 0)) r.Id = 0;
        });
    }

    void CallLocal(Instruction ins, int idx)
    {
        int subprog = _info.SubprogOf(idx + ins.Imm + 1);
        if (IsGlobal(subprog))
        {
            CallGlobal(idx, subprog);
            return;
        }
        // The kernel's setup_func_entry: a call that would open a ninth frame, without check_max_stack_depth's " !".
        if (_cur.Frames.Count >= BpfAbi.MaxCallFrames)
            throw Err($"the call stack of {_cur.Frames.Count + 1} frames is too deep");
        int target = idx + ins.Imm + 1;
        var caller = Frame;
        var callee = new FuncState { CallSite = idx, FrameNo = _cur.Frames.Count, Subprog = _info.SubprogOf(target) };
        for (int r = BpfAbi.FirstArgRegister; r <= BpfAbi.LastArgRegister; r++)
        {
            callee.Regs[r] = caller.Regs[r];
            callee.Regs[r].Precise = false;
        }
        callee.Regs[10] = RegState.Pointer(RegType.PtrToStack);
        callee.Regs[10].Frame = callee.FrameNo;
        for (int r = 0; r < BpfAbi.CallerSavedCount; r++) caller.Regs[r] = RegState.NotInit;
        _cur.Frames.Add(callee);
        _cur.Insn = target;
        if (Log2) _log.AppendLine($"caller:\n {StateFormatter.Format(_cur, _maps)}");
    }

    bool CheckExit(int idx)
    {
        if (_cur.Frames.Count > 1)
        {
            // A subprogram may return without setting r0; the caller then cannot read it.
            var callee = Frame;
            var r0 = callee.Regs[0];
            if (r0.Type == RegType.PtrToStack) throw Err("cannot return stack pointer to the caller");
            if (callee.InCallback)
            {
                ExitCallback(callee);
                return true;
            }
            _cur.Frames.RemoveAt(_cur.Frames.Count - 1);
            Frame.Regs[0] = r0;
            Frame.Regs[0].Precise = false;
            _cur.Insn = callee.CallSite + 1;
            return true;
        }
        if (_cur.LockMap >= 0)
            throw Err("BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region");
        if (_cur.Refs.Count > 0)
        {
            var lines = string.Join("\n", _cur.Refs.Select(r => $"Unreleased reference id={r.Id} alloc_insn={r.InsnIdx}"));
            throw Err(lines + "\nBPF_EXIT instruction in main prog would lead to reference leak");
        }
        if (_cur.RcuLock) throw Err("BPF_EXIT instruction in main prog cannot be used inside bpf_rcu_read_lock-ed region");
        CheckRead(0);
        var ret = Regs[0];
        if (Frame.InAsyncCallback)
        {
            // check_return_code: a timer callback returns exactly 0.
            if (!ret.IsScalar) throw Err($"At async callback return the register R0 is not a known value ({RegName(ret)})");
            MarkPrecise(0);
            if (ret.Smin != 0 || ret.Smax != 0) throw Err(InvalidScalar("At async callback return", "R0", ret, 0, 0));
            return false;
        }
        if (Frame.Subprog != 0)
        {
            // A global function returns any scalar (check_return_code for a subprogram).
            if (!ret.IsScalar) throw Err($"At subprogram exit the register R0 is not a scalar value ({RegName(ret)})");
            return false;
        }
        // check_return_code: a type without a range (SK_REUSEPORT) may return anything, a pointer too as root.
        if (_type.ReturnRange is not { } range) return false;
        if (!ret.IsScalar)
            throw Err($"At program exit the register R0 is not a known value ({RegName(ret)})");
        MarkPrecise(0);
        if (ret.Smin < range.Min || ret.Smax > range.Max) throw Err(InvalidScalar("At program exit", "R0", ret, range.Min, range.Max));
        return false;
    }
}
