using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>ALU and ALU64 (the kernel's check_alu_op, adjust_reg_min_max_vals, adjust_ptr_min_max_vals).</summary>
internal sealed partial class Checker
{
    const long MaxVarOff = 1L << 29;

    static readonly string[] s_aluNames = ["+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=", "endian"];

    static string AluName(AluOp op) => s_aluNames[(int)op >> 4];

    void CheckAlu(Instruction ins, int idx)
    {
        bool alu64 = ins.Class == InstructionClass.Alu64;
        var op = ins.AluOp;
        int dst = ins.Dst;
        var regs = Regs;
        if (op is AluOp.End or AluOp.Neg)
        {
            CheckRead(dst);
            CheckWrite(dst);
            ref RegState r = ref regs[dst];
            if (!r.IsScalar)
            {
                // Root may negate or swap a pointer; the result is a number (check_reg_arg's DST_OP).
                r = RegState.Unknown();
                return;
            }
            if (op == AluOp.Neg) ScalarAlu.Apply(ref r, default, AluOp.Neg, !alu64);
            else
            {
                // bswap (ALU64) and be swap on a little-endian host; le only truncates, and le64 is a no-op.
                bool swap = alu64 || ins.SourceIsReg;
                if (!swap && ins.Imm == 64) return;
                ScalarAlu.ByteSwap(ref r, ins.Imm, swap);
            }
            // A changed value: copies no longer equal it (the kernel resets the id for NEG and BPF_END).
            r.Id = 0;
            r.Off = 0;
            r.Precise = false;
            return;
        }
        if (op == AluOp.Mov)
        {
            CheckMov(ins, alu64);
            return;
        }
        RegState src;
        if (ins.SourceIsReg)
        {
            CheckRead(ins.Src);
            src = regs[ins.Src];
        }
        else src = RegState.Known((ulong)(long)ins.Imm);
        CheckRead(dst);
        if (op is AluOp.Div or AluOp.Mod && !ins.SourceIsReg && ins.Imm == 0) throw Err("div by zero");
        if (op is AluOp.Lsh or AluOp.Rsh or AluOp.Arsh && !ins.SourceIsReg && (ins.Imm < 0 || ins.Imm >= (alu64 ? 64 : 32)))
            throw Err($"invalid shift {ins.Imm}");
        CheckWrite(dst);
        if (op is AluOp.Div or AluOp.Mod && ins.SourceIsReg)
        {
            // The JIT drops the zero check on DivisorNonZero: pruned paths must have the same divisor range.
            MarkPrecise(ins.Src);
            bool nonZero = src.IsScalar && (alu64 ? src.Umin > 0 : src.U32Min > 0);
            var f = _facts[idx];
            f.DivisorNonZero = f.DivSeen ? f.DivisorNonZero && nonZero : nonZero;
            f.DivSeen = true;
        }
        ref RegState d = ref regs[dst];
        // pointer += scalar: the scalar becomes part of the pointer's offset.
        if (src.IsPointer && d.IsScalar) MarkPrecise(dst);
        if (d.IsPointer && src.IsScalar && ins.SourceIsReg) MarkPrecise(ins.Src);
        if (src.IsPointer)
        {
            if (d.IsPointer)
            {
                if (op == AluOp.Sub) { d = RegState.Unknown(); return; }
                throw Err($"R{dst} pointer {AluName(op)} pointer prohibited");
            }
            PointerArithmetic(ins, ref d, src, d, alu64, scalarIsDst: true);
            return;
        }
        if (d.IsPointer)
        {
            PointerArithmetic(ins, ref d, d, src, alu64, scalarIsDst: false);
            return;
        }
        if (op is AluOp.And or AluOp.Or && src.VarOff.IsConst) ForkSignMask(ref d, idx);
        // An alu32 add keeps the link only when the upper half was zero before it (the result is zero-extended).
        ulong dstUmaxBefore = d.Umax;
        ScalarAlu.Apply(ref d, src, op, !alu64);
        // A new value: whatever precision the old one had was backtracked from the old one.
        d.Precise = false;
        TrackDelta(ref d, src, op, alu64, dstUmaxBefore, sameReg: ins.SourceIsReg && ins.Src == dst);
    }

    /// <summary>Flag in a scalar id: the register is its linked copy plus <see cref="RegState.Off"/>, by a 64-bit add (BPF_ADD_CONST64).</summary>
    internal const int LinkedDelta64 = 1 << 30;
    /// <summary>Flag in a scalar id: the register is the zero-extended 32-bit sum of its linked copy and <see cref="RegState.Off"/> (BPF_ADD_CONST32).</summary>
    internal const int LinkedDelta32 = 1 << 29;
    /// <summary>Both delta flags: <c>id &amp; ~LinkedDelta</c> is the base id the linked copies share.</summary>
    internal const int LinkedDelta = LinkedDelta64 | LinkedDelta32;

    /// <summary>
    /// <c>rX += K</c> or <c>rX -= K</c> on a linked scalar keeps the link with a known delta, so a later
    /// comparison of rX still refines its copies (the kernel's BPF_ADD_CONST64/32 in adjust_reg_min_max_vals);
    /// any other operation breaks the link. A 32-bit add links only a value whose upper half was zero
    /// (<paramref name="dstUmaxBefore"/>), since the result is zero-extended; <c>rX += rX</c> is not a constant add.
    /// </summary>
    static void TrackDelta(ref RegState d, RegState src, AluOp op, bool alu64, ulong dstUmaxBefore, bool sameReg)
    {
        bool isConst = alu64 ? src.VarOff.IsConst : src.VarOff.Subreg.IsConst;
        if (op is AluOp.Add or AluOp.Sub && d.Id != 0 && isConst && !sameReg && (d.Id & LinkedDelta) == 0)
        {
            long val = alu64 ? (long)src.VarOff.Value : (uint)src.VarOff.Value;
            bool fits = alu64 ? val >= int.MinValue && val <= int.MaxValue : dstUmaxBefore <= uint.MaxValue;
            int off = (int)val;
            if (fits && !(op == AluOp.Sub && off == int.MinValue))
            {
                d.Id |= alu64 ? LinkedDelta64 : LinkedDelta32;
                d.Off = op == AluOp.Sub ? -off : off;
                return;
            }
        }
        d.Id = 0;
        d.Off = 0;
    }

    /// <summary>
    /// <c>d &amp;= K</c> or <c>d |= K</c> where d is -1 or 0 (what <c>s&gt;&gt;= 63</c> or <c>s&gt;&gt;= 31</c> leaves, the
    /// kernel's maybe_fork_scalars): the path splits into d = -1, which goes on, and d = 0, queued to run this
    /// instruction again. Each side then gets an exact result instead of a range covering both and more.
    /// </summary>
    void ForkSignMask(ref RegState d, int idx)
    {
        bool whole = d.Smin == -1 && d.Smax == 0;
        if (!whole && !(d.S32Min == -1 && d.S32Max == 0)) return;
        var zero = _cur.Clone();
        zero.Insn = idx;
        ref RegState z = ref zero.Cur.Regs[_insns[idx].Dst];
        if (whole)
        {
            z = RegState.Known(0);
            d = RegState.Known(ulong.MaxValue);
        }
        else
        {
            // Only the subregister is -1 or 0: the upper half keeps what it was.
            z.MarkKnown32(0);
            z.Sync();
            d.MarkKnown32(uint.MaxValue);
            d.Sync();
        }
        Push(zero);
    }

    /// <summary>A narrow load keeps the low bytes; a value that did not fit is a new value, unlinked from its copies.</summary>
    static RegState Truncated(RegState r, int bytes)
    {
        ulong max = bytes >= 8 ? ulong.MaxValue : (1UL << (bytes * 8)) - 1;
        var t = r;
        ScalarAlu.CoerceToSize(ref t, bytes);
        if (r.Umax > max)
        {
            t.Id = 0;
            t.Off = 0;
            t.Precise = false;
        }
        return t;
    }

    void CheckMov(Instruction ins, bool alu64)
    {
        var regs = Regs;
        int dst = ins.Dst;
        if (ins.SourceIsReg)
        {
            CheckRead(ins.Src);
            CheckWrite(dst);
            ref RegState s = ref regs[ins.Src];
            if (alu64 && ins.Offset == 0)
            {
                AssignIdBeforeMov(ref s);
                regs[dst] = s;
                regs[dst].Precise = false;
                return;
            }
            if (!s.IsScalar)
            {
                // Root may copy part of a pointer: a number, of 32 bits for a 32-bit move (w2 = w10).
                var u = RegState.Unknown();
                if (!alu64)
                {
                    u.ZeroExtend32();
                    u.Sync();
                }
                regs[dst] = u;
                return;
            }
            RegState v;
            // A copy that leaves the value as it is stays linked to its source: a 32-bit move of a value that
            // fits in 32 bits, a sign extension of a value below the extended width's sign bit.
            bool same = ins.Offset == 0 ? s.Umax <= uint.MaxValue : s.Umax < 1UL << (ins.Offset - 1);
            if (same)
            {
                AssignIdBeforeMov(ref s);
                v = s;
            }
            else
            {
                v = s;
                v.Id = 0;
                v.Off = 0;
            }
            v.Precise = false;
            if (ins.Offset != 0) ScalarAlu.SignExtend(ref v, ins.Offset, alu32: !alu64);
            else
            {
                v.ZeroExtend32();
                v.Sync();
            }
            regs[dst] = v;
            return;
        }
        CheckWrite(dst);
        regs[dst] = RegState.Known(alu64 ? (ulong)(long)ins.Imm : (uint)ins.Imm);
    }

    /// <summary>Gives a scalar an id before it is copied, so the copies are linked (assign_scalar_id_before_mov).</summary>
    void AssignIdBeforeMov(ref RegState s)
    {
        if (!s.IsScalar) return;
        if ((s.Id & LinkedDelta) != 0) { s.Id = 0; s.Off = 0; }
        if (s.Id == 0 && !s.VarOff.IsConst)
        {
            s.Id = NewId();
            s.Off = 0;
        }
    }

    /// <summary>The constant a linked scalar differs from its base by (0 unless its id carries a delta flag).</summary>
    internal static int Delta(in RegState r) => (r.Id & LinkedDelta) != 0 ? r.Off : 0;

    /// <summary>ptr += scalar, ptr -= scalar, scalar += ptr (adjust_ptr_min_max_vals).</summary>
    void PointerArithmetic(Instruction ins, ref RegState dst, RegState ptr, RegState off, bool alu64, bool scalarIsDst)
    {
        var op = ins.AluOp;
        int regno = ins.Dst;
        bool known = off.VarOff.IsConst;
        long sminVal = off.Smin, smaxVal = off.Smax;
        ulong uminVal = off.Umin, umaxVal = off.Umax;
        if ((known && (sminVal != smaxVal || uminVal != umaxVal)) || sminVal > smaxVal || uminVal > umaxVal)
        {
            dst = RegState.Unknown();
            return;
        }
        if (!alu64)
        {
            if (op == AluOp.Sub) { dst = RegState.Unknown(); return; }
            throw Err($"R{regno} 32-bit pointer arithmetic prohibited");
        }
        if (ptr.IsNullable)
            throw Err($"R{regno} pointer arithmetic on {RegName(ptr)} prohibited, null-check it first");
        switch (ptr.Type)
        {
            case RegType.PtrToCtx or RegType.PtrToMapValue or RegType.PtrToMapKey or RegType.PtrToStack or RegType.PtrToMem or RegType.PtrToArgMem or RegType.PtrToFunc
                or RegType.PtrToRdonlyMem or RegType.PtrToBtfId or RegType.PtrToUntrustedBtfId or RegType.PtrToPacket or RegType.ConstPtrToDynptr
                or RegType.PtrToRcuBtfId or RegType.PtrToUntrustedFlagBtfId or RegType.PtrToRdonlyUntrustedMem:
                break;
            case RegType.ConstPtrToMap when known && sminVal == 0 && op == AluOp.Add:
                break;
            default:
                throw Err($"R{regno} pointer arithmetic on {RegName(ptr)} prohibited");
        }
        CheckSaneOffset(off, ptr.Type);
        CheckSaneOffset(ptr, ptr.Type);
        var res = ptr;
        res.Unbound32();
        // False when the scalar was a constant folded into the fixed offset.
        bool variable = true;
        switch (op)
        {
            case AluOp.Add:
                if (known && (long)ptr.Off + sminVal == (int)(ptr.Off + sminVal))
                {
                    res.Off = (int)(ptr.Off + sminVal);
                    variable = false;
                    break;
                }
                {
                    bool ov = AddOv(ptr.Smin, sminVal, out long lo) | AddOv(ptr.Smax, smaxVal, out long hi);
                    res.Smin = ov ? long.MinValue : lo;
                    res.Smax = ov ? long.MaxValue : hi;
                }
                {
                    ulong lo = ptr.Umin + uminVal, hi = ptr.Umax + umaxVal;
                    if (lo < ptr.Umin || hi < ptr.Umax) { res.Umin = 0; res.Umax = ulong.MaxValue; }
                    else { res.Umin = lo; res.Umax = hi; }
                }
                res.VarOff = ptr.VarOff + off.VarOff;
                break;
            case AluOp.Sub:
                if (scalarIsDst) throw Err($"R{regno} tried to subtract pointer from scalar");
                if (ptr.Type == RegType.PtrToStack) throw Err($"R{regno} subtraction from stack pointer prohibited");
                if (known && (long)ptr.Off - sminVal == (int)(ptr.Off - sminVal))
                {
                    res.Off = (int)(ptr.Off - sminVal);
                    variable = false;
                    break;
                }
                {
                    bool ov = SubOv(ptr.Smin, smaxVal, out long lo) | SubOv(ptr.Smax, sminVal, out long hi);
                    res.Smin = ov ? long.MinValue : lo;
                    res.Smax = ov ? long.MaxValue : hi;
                    if (ptr.Umin < umaxVal) { res.Umin = 0; res.Umax = ulong.MaxValue; }
                    else { res.Umin = ptr.Umin - umaxVal; res.Umax = ptr.Umax - uminVal; }
                }
                res.VarOff = ptr.VarOff - off.VarOff;
                break;
            case AluOp.And or AluOp.Or or AluOp.Xor:
                throw Err($"R{regno} bitwise operator {AluName(op)} on pointer prohibited");
            default:
                throw Err($"R{regno} pointer arithmetic with {AluName(op)} operator prohibited");
        }
        // A variable offset added to a packet pointer makes a new base: a new id, and no range until a compare proves
        // one (subtracting a variable that may be negative likewise).
        if (ptr.Type == RegType.PtrToPacket && variable)
        {
            res.Id = NewId();
            if (op == AluOp.Add || sminVal < 0) res.Aux = 0;
        }
        CheckSaneOffset(res, ptr.Type);
        res.Sync();
        dst = res;
    }

    static bool AddOv(long a, long b, out long r)
    {
        r = unchecked(a + b);
        return ((a ^ r) & (b ^ r)) < 0;
    }

    static bool SubOv(long a, long b, out long r)
    {
        r = unchecked(a - b);
        return ((a ^ b) & (a ^ r)) < 0;
    }

    void CheckSaneOffset(in RegState r, RegType type)
    {
        string t = RegTypeNames.Name(type);
        long val = (long)r.VarOff.Value;
        if (r.VarOff.IsConst && (val >= MaxVarOff || val <= -MaxVarOff))
            throw Err($"math between {t} pointer and {val} is not allowed");
        if (r.Off >= MaxVarOff || r.Off <= -MaxVarOff)
            throw Err($"{t} pointer offset {r.Off} is not allowed");
        if (r.Smin == long.MinValue)
            throw Err($"math between {t} pointer and register with unbounded min value is not allowed");
        if (r.Smin >= MaxVarOff || r.Smin <= -MaxVarOff)
            throw Err($"value {r.Smin} makes {t} pointer be out of bounds");
    }
}
