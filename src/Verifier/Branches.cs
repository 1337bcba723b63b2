using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>
/// Conditional jumps on scalars: whether a branch is always or never taken (the kernel's
/// <c>is_branch_taken</c>) and the bounds each side learns (<c>regs_refine_cond_op</c>).
/// </summary>
internal static class Branches
{
    /// <summary>The opcode that holds on the fall-through side (<c>rev_opcode</c>); JSET's reverse is "JSET is false".</summary>
    public static JmpOp Reverse(JmpOp op) => op switch
    {
        JmpOp.Jeq => JmpOp.Jne,
        JmpOp.Jgt => JmpOp.Jle,
        JmpOp.Jge => JmpOp.Jlt,
        JmpOp.Jne => JmpOp.Jeq,
        JmpOp.Jsgt => JmpOp.Jsle,
        JmpOp.Jsge => JmpOp.Jslt,
        JmpOp.Jlt => JmpOp.Jge,
        JmpOp.Jle => JmpOp.Jgt,
        JmpOp.Jslt => JmpOp.Jsge,
        JmpOp.Jsle => JmpOp.Jsgt,
        _ => NotSet,
    };

    /// <summary>Stands for "JSET is false" (the kernel encodes it as BPF_JSET | BPF_X).</summary>
    public const JmpOp NotSet = (JmpOp)0xf0;

    /// <summary>The opcode with its operands swapped (<c>flip_opcode</c>).</summary>
    public static JmpOp Flip(JmpOp op) => op switch
    {
        JmpOp.Jgt => JmpOp.Jlt,
        JmpOp.Jge => JmpOp.Jle,
        JmpOp.Jsgt => JmpOp.Jslt,
        JmpOp.Jsge => JmpOp.Jsle,
        JmpOp.Jlt => JmpOp.Jgt,
        JmpOp.Jle => JmpOp.Jge,
        JmpOp.Jslt => JmpOp.Jsgt,
        JmpOp.Jsle => JmpOp.Jsge,
        _ => op,
    };

    static bool IsConst(in RegState r, bool is32) => is32 ? r.VarOff.Subreg.IsConst : r.VarOff.IsConst;

    static ulong ConstValue(in RegState r, bool is32) => is32 ? (uint)r.VarOff.Value : r.VarOff.Value;

    /// <summary>True when a pointer of this type is never NULL (<c>reg_not_null</c>).</summary>
    static bool NotNull(in RegState r) => r.Type is RegType.PtrToSocket or RegType.PtrToMapValue or RegType.PtrToMapKey
        or RegType.PtrToMem or RegType.PtrToArgMem or RegType.ConstPtrToMap or RegType.PtrToRdonlyMem or RegType.PtrToBtfId
        or RegType.PtrToSockCommon;

    /// <summary>reg_is_pkt_pointer_any: a packet pointer or the packet's end.</summary>
    static bool IsPacket(in RegState r) => r.Type is RegType.PtrToPacket or RegType.PtrToPacketEnd;

    /// <summary>AT_PKT_END: a packet pointer's range after a compare put it at the packet's end (<c>pkt &gt;= pkt_end</c>).</summary>
    public const int AtPacketEnd = -1;
    /// <summary>BEYOND_PKT_END: a packet pointer's range after a compare put it past the packet's end (<c>pkt &gt; pkt_end</c>).</summary>
    public const int BeyondPacketEnd = -2;

    /// <summary>
    /// is_pkt_ptr_branch_taken: a pointer a previous compare placed at or past the end decides a later compare with
    /// the end (<see cref="RegState.Aux"/> is its range); 1 taken, 0 not, -1 unknown.
    /// </summary>
    static int PacketTaken(in RegState r1, in RegState r2, JmpOp op)
    {
        RegState pkt;
        if (r2.Type == RegType.PtrToPacketEnd) pkt = r1;
        else if (r1.Type == RegType.PtrToPacketEnd) { pkt = r2; op = Flip(op); }
        else return -1;
        if (pkt.Type != RegType.PtrToPacket || pkt.Aux >= 0) return -1;
        switch (op)
        {
            case JmpOp.Jgt or JmpOp.Jle:
                if (pkt.Aux == BeyondPacketEnd) return op == JmpOp.Jgt ? 1 : 0;
                break;
            case JmpOp.Jge or JmpOp.Jlt:
                return op == JmpOp.Jge ? 1 : 0;
        }
        return -1;
    }

    /// <summary>1 when always taken, 0 when never, -1 when unknown.</summary>
    public static int IsTaken(RegState r1, RegState r2, JmpOp op, bool is32)
    {
        if (IsPacket(r1) && IsPacket(r2) && !is32) return PacketTaken(r1, r2, op);
        if (r1.IsPointer || r2.IsPointer)
        {
            if (!IsConst(r2, is32) || r2.IsPointer) { op = Flip(op); (r1, r2) = (r2, r1); }
            if (r2.IsPointer || !IsConst(r2, is32)) return -1;
            if (ConstValue(r2, is32) != 0 || !NotNull(r1)) return -1;
            return op switch { JmpOp.Jeq => 0, JmpOp.Jne => 1, _ => -1 };
        }
        return ScalarTaken(r1, r2, op, is32);
    }

    static int ScalarTaken(RegState r1, RegState r2, JmpOp op, bool is32)
    {
        var t1 = is32 ? r1.VarOff.Subreg : r1.VarOff;
        var t2 = is32 ? r2.VarOff.Subreg : r2.VarOff;
        ulong umin1 = is32 ? r1.U32Min : r1.Umin, umax1 = is32 ? r1.U32Max : r1.Umax;
        ulong umin2 = is32 ? r2.U32Min : r2.Umin, umax2 = is32 ? r2.U32Max : r2.Umax;
        long smin1 = is32 ? r1.S32Min : r1.Smin, smax1 = is32 ? r1.S32Max : r1.Smax;
        long smin2 = is32 ? r2.S32Min : r2.Smin, smax2 = is32 ? r2.S32Max : r2.Smax;
        switch (op)
        {
            case JmpOp.Jeq:
            case JmpOp.Jne:
                {
                    int eq = -1;
                    if (t1.IsConst && t2.IsConst) eq = t1.Value == t2.Value ? 1 : 0;
                    else if (umin1 > umax2 || umax1 < umin2 || smin1 > smax2 || smax1 < smin2) eq = 0;
                    else if (((t1.Value ^ t2.Value) & ~(t1.Mask | t2.Mask)) != 0) eq = 0;
                    else if (!is32 && (r1.U32Min > r2.U32Max || r1.U32Max < r2.U32Min || r1.S32Min > r2.S32Max || r1.S32Max < r2.S32Min)) eq = 0;
                    if (eq < 0) return -1;
                    return op == JmpOp.Jeq ? eq : 1 - eq;
                }
            case JmpOp.Jgt: return umin1 > umax2 ? 1 : umax1 <= umin2 ? 0 : -1;
            case JmpOp.Jge: return umin1 >= umax2 ? 1 : umax1 < umin2 ? 0 : -1;
            case JmpOp.Jset:
            case NotSet:
                {
                    if (!IsConst(r2, is32)) { (t1, t2) = (t2, t1); (r1, r2) = (r2, r1); }
                    if (!IsConst(r2, is32)) return -1;
                    int set = -1;
                    if ((~t1.Mask & t1.Value & t2.Value) != 0) set = 1;
                    else if (((t1.Mask | t1.Value) & t2.Value) == 0) set = 0;
                    if (set < 0) return -1;
                    return op == JmpOp.Jset ? set : 1 - set;
                }
            case JmpOp.Jsgt: return smin1 > smax2 ? 1 : smax1 <= smin2 ? 0 : -1;
            case JmpOp.Jsge: return smin1 >= smax2 ? 1 : smax1 < smin2 ? 0 : -1;
            case JmpOp.Jlt: return umax1 < umin2 ? 1 : umin1 >= umax2 ? 0 : -1;
            case JmpOp.Jle: return umax1 <= umin2 ? 1 : umin1 > umax2 ? 0 : -1;
            case JmpOp.Jslt: return smax1 < smin2 ? 1 : smin1 >= smax2 ? 0 : -1;
            case JmpOp.Jsle: return smax1 <= smin2 ? 1 : smin1 > smax2 ? 0 : -1;
        }
        return -1;
    }

    /// <summary>Narrows two scalars to the values for which <c>r1 OP r2</c> holds, then syncs both.</summary>
    public static void Refine(ref RegState r1, ref RegState r2, JmpOp op, bool is32)
    {
        RefineOp(ref r1, ref r2, op, is32);
        r1.Sync();
        r2.Sync();
    }

    static Tnum WithSubreg(Tnum reg, Tnum sub) => reg.ClearSubreg | sub.Subreg;

    static void RefineOp(ref RegState r1, ref RegState r2, JmpOp op, bool is32)
    {
        switch (op)
        {
            case JmpOp.Jeq:
                if (is32)
                {
                    r1.U32Min = Math.Max(r1.U32Min, r2.U32Min); r1.U32Max = Math.Min(r1.U32Max, r2.U32Max);
                    r1.S32Min = Math.Max(r1.S32Min, r2.S32Min); r1.S32Max = Math.Min(r1.S32Max, r2.S32Max);
                    r2.U32Min = r1.U32Min; r2.U32Max = r1.U32Max; r2.S32Min = r1.S32Min; r2.S32Max = r1.S32Max;
                    var t = r1.VarOff.Subreg.Intersect(r2.VarOff.Subreg);
                    r1.VarOff = WithSubreg(r1.VarOff, t);
                    r2.VarOff = WithSubreg(r2.VarOff, t);
                }
                else
                {
                    r1.Umin = Math.Max(r1.Umin, r2.Umin); r1.Umax = Math.Min(r1.Umax, r2.Umax);
                    r1.Smin = Math.Max(r1.Smin, r2.Smin); r1.Smax = Math.Min(r1.Smax, r2.Smax);
                    r2.Umin = r1.Umin; r2.Umax = r1.Umax; r2.Smin = r1.Smin; r2.Smax = r1.Smax;
                    r1.VarOff = r1.VarOff.Intersect(r2.VarOff);
                    r2.VarOff = r1.VarOff;
                }
                break;
            case JmpOp.Jgt or JmpOp.Jge or JmpOp.Jsgt or JmpOp.Jsge:
                RefineOp(ref r2, ref r1, Flip(op), is32);
                break;
            case JmpOp.Jset:
            case NotSet:
                {
                    ref RegState a = ref r1;
                    RegState b = r2;
                    if (!IsConst(r2, is32)) { a = ref r2; b = r1; }
                    if (!IsConst(b, is32)) break;
                    ulong val = ConstValue(b, is32);
                    if (op == JmpOp.Jset)
                    {
                        if (val == 0 || (val & (val - 1)) != 0) break;
                        if (is32) a.VarOff = WithSubreg(a.VarOff, a.VarOff.Subreg | Tnum.Const(val));
                        else a.VarOff |= Tnum.Const(val);
                    }
                    else
                    {
                        var before = a.VarOff;
                        if (is32) a.VarOff = WithSubreg(a.VarOff, a.VarOff.Subreg & Tnum.Const(~val));
                        else a.VarOff &= Tnum.Const(~val);
                        // Linux 6.18 keeps none of the ranges when "JSET is false" clears bits of the tnum: the
                        // side continues with the ranges of the new tnum alone (e.g. r8 in [21, 255] and
                        // !(r8 & 7) gives [0, 248], not [21, 248]). Keeping the tighter ranges would prove
                        // branches dead that the kernel explores, and accept what it refuses there.
                        if (a.VarOff != before)
                        {
                            a.Unbound64();
                            a.Unbound32();
                        }
                    }
                    break;
                }
            case JmpOp.Jne:
                {
                    if (!IsConst(r2, is32)) { RefineNe(ref r2, r1, is32); break; }
                    RefineNe(ref r1, r2, is32);
                    break;
                }
            case JmpOp.Jlt:
                if (is32) { r1.U32Max = Math.Min(r1.U32Max, r2.U32Max - 1); r2.U32Min = Math.Max(r1.U32Min + 1, r2.U32Min); }
                else { r1.Umax = Math.Min(r1.Umax, r2.Umax - 1); r2.Umin = Math.Max(r1.Umin + 1, r2.Umin); }
                break;
            case JmpOp.Jle:
                if (is32) { r1.U32Max = Math.Min(r1.U32Max, r2.U32Max); r2.U32Min = Math.Max(r1.U32Min, r2.U32Min); }
                else { r1.Umax = Math.Min(r1.Umax, r2.Umax); r2.Umin = Math.Max(r1.Umin, r2.Umin); }
                break;
            case JmpOp.Jslt:
                if (is32) { r1.S32Max = Math.Min(r1.S32Max, r2.S32Max - 1); r2.S32Min = Math.Max(r1.S32Min + 1, r2.S32Min); }
                else { r1.Smax = Math.Min(r1.Smax, r2.Smax - 1); r2.Smin = Math.Max(r1.Smin + 1, r2.Smin); }
                break;
            case JmpOp.Jsle:
                if (is32) { r1.S32Max = Math.Min(r1.S32Max, r2.S32Max); r2.S32Min = Math.Max(r1.S32Min, r2.S32Min); }
                else { r1.Smax = Math.Min(r1.Smax, r2.Smax); r2.Smin = Math.Max(r1.Smin, r2.Smin); }
                break;
        }
    }

    static void RefineNe(ref RegState r, RegState c, bool is32)
    {
        if (!IsConst(c, is32)) return;
        ulong val = ConstValue(c, is32);
        if (is32)
        {
            if (r.U32Min == (uint)val) r.U32Min++;
            if (r.U32Max == (uint)val) r.U32Max--;
            if (r.S32Min == (int)(uint)val) r.S32Min++;
            if (r.S32Max == (int)(uint)val) r.S32Max--;
        }
        else
        {
            if (r.Umin == val) r.Umin++;
            if (r.Umax == val) r.Umax--;
            if (r.Smin == (long)val) r.Smin++;
            if (r.Smax == (long)val) r.Smax--;
        }
    }
}
