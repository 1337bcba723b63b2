using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>
/// The kernel's <c>adjust_scalar_min_max_vals</c>: the tnum and the four ranges of a scalar after
/// an ALU or ALU64 operation with a scalar source. Every case keeps the result a superset of the
/// values the operation can produce.
/// </summary>
internal static partial class ScalarAlu
{
    /// <summary>Applies <c>dst = dst OP src</c> on 64 bits (<paramref name="alu32"/> false) or 32 bits.</summary>
    public static void Apply(ref RegState dst, RegState src, AluOp op, bool alu32)
    {
        if (!SafeToCompute(src, op, alu32))
        {
            dst.MakeUnknown();
            return;
        }
        switch (op)
        {
            case AluOp.Add:
                Add32(ref dst, src); Add64(ref dst, src);
                dst.VarOff += src.VarOff;
                break;
            case AluOp.Sub:
                Sub32(ref dst, src); Sub64(ref dst, src);
                dst.VarOff -= src.VarOff;
                break;
            case AluOp.Mul:
                dst.VarOff *= src.VarOff;
                Mul32(ref dst, src); Mul64(ref dst, src);
                break;
            case AluOp.Or:
                dst.VarOff |= src.VarOff;
                Or32(ref dst, src); Or64(ref dst, src);
                break;
            case AluOp.And:
                dst.VarOff &= src.VarOff;
                And32(ref dst, src); And64(ref dst, src);
                break;
            case AluOp.Lsh:
                if (alu32) Lsh32(ref dst, src); else Lsh64(ref dst, src);
                break;
            case AluOp.Rsh:
                if (alu32) Rsh32(ref dst, src); else Rsh64(ref dst, src);
                break;
            case AluOp.Neg:
                {
                    var old = dst;
                    dst.MarkKnown(0);
                    Sub32(ref dst, old); Sub64(ref dst, old);
                    dst.VarOff = Tnum.Const(0) - old.VarOff;
                    break;
                }
            case AluOp.Xor:
                dst.VarOff ^= src.VarOff;
                Xor32(ref dst, src); Xor64(ref dst, src);
                break;
            case AluOp.Arsh:
                if (alu32) Arsh32(ref dst, src); else Arsh64(ref dst, src);
                break;
        }
        if (alu32) dst.ZeroExtend32();
        dst.Sync();
    }

    /// <summary>
    /// The kernel's <c>is_safe_to_compute_dst_reg_range</c>. A shift is computed only by a constant amount
    /// below the operation's width, and the width test reads the 64-bit <c>umax</c> even for a 32-bit shift:
    /// a 32-bit source whose upper half is unknown gives an unknown result, as in the kernel.
    /// </summary>
    static bool SafeToCompute(RegState src, AluOp op, bool alu32)
    {
        bool srcConst = alu32
            ? src.VarOff.Subreg.IsConst && src.S32Min == src.S32Max && src.U32Min == src.U32Max
            : src.VarOff.IsConst && src.Smin == src.Smax && src.Umin == src.Umax;
        return op switch
        {
            AluOp.Add or AluOp.Sub or AluOp.Mul or AluOp.Or or AluOp.And or AluOp.Neg or AluOp.Xor => true,
            AluOp.Lsh or AluOp.Rsh or AluOp.Arsh => srcConst && src.Umax < (alu32 ? 32UL : 64UL),
            _ => false,
        };
    }

    // Add and sub (scalar32_min_max_add/sub, scalar_min_max_add/sub): a signed overflow at either end loses
    // the signed range; an unsigned wrap loses the unsigned range only when one end wraps and the other does
    // not (when both wrap, every value between wraps once and the wrapped ends still bound the result).

    static void Add32(ref RegState d, RegState s)
    {
        long smin = (long)d.S32Min + s.S32Min, smax = (long)d.S32Max + s.S32Max;
        if (smin < int.MinValue || smin > int.MaxValue || smax < int.MinValue || smax > int.MaxValue)
        { d.S32Min = int.MinValue; d.S32Max = int.MaxValue; }
        else { d.S32Min = (int)smin; d.S32Max = (int)smax; }
        ulong umin = (ulong)d.U32Min + s.U32Min, umax = (ulong)d.U32Max + s.U32Max;
        if (umin <= uint.MaxValue && umax > uint.MaxValue) { d.U32Min = 0; d.U32Max = uint.MaxValue; }
        else { d.U32Min = (uint)umin; d.U32Max = (uint)umax; }
    }

    static void Add64(ref RegState d, RegState s)
    {
        bool of1 = AddOverflows(d.Smin, s.Smin, out long smin), of2 = AddOverflows(d.Smax, s.Smax, out long smax);
        if (of1 || of2) { d.Smin = long.MinValue; d.Smax = long.MaxValue; }
        else { d.Smin = smin; d.Smax = smax; }
        ulong umin = d.Umin + s.Umin, umax = d.Umax + s.Umax;
        if (umin >= d.Umin && umax < d.Umax) { d.Umin = 0; d.Umax = ulong.MaxValue; }
        else { d.Umin = umin; d.Umax = umax; }
    }

    static bool AddOverflows(long a, long b, out long r)
    {
        r = unchecked(a + b);
        return ((a ^ r) & (b ^ r)) < 0;
    }

    static bool SubOverflows(long a, long b, out long r)
    {
        r = unchecked(a - b);
        return ((a ^ b) & (a ^ r)) < 0;
    }

    static void Sub32(ref RegState d, RegState s)
    {
        long smin = (long)d.S32Min - s.S32Max, smax = (long)d.S32Max - s.S32Min;
        if (smin < int.MinValue || smin > int.MaxValue || smax < int.MinValue || smax > int.MaxValue)
        { d.S32Min = int.MinValue; d.S32Max = int.MaxValue; }
        else { d.S32Min = (int)smin; d.S32Max = (int)smax; }
        bool minWraps = d.U32Min < s.U32Max, maxWraps = d.U32Max < s.U32Min;
        if (minWraps && !maxWraps) { d.U32Min = 0; d.U32Max = uint.MaxValue; }
        else { d.U32Min -= s.U32Max; d.U32Max -= s.U32Min; }
    }

    static void Sub64(ref RegState d, RegState s)
    {
        bool of1 = SubOverflows(d.Smin, s.Smax, out long smin), of2 = SubOverflows(d.Smax, s.Smin, out long smax);
        if (of1 || of2) { d.Smin = long.MinValue; d.Smax = long.MaxValue; }
        else { d.Smin = smin; d.Smax = smax; }
        bool minWraps = d.Umin < s.Umax, maxWraps = d.Umax < s.Umin;
        if (minWraps && !maxWraps) { d.Umin = 0; d.Umax = ulong.MaxValue; }
        else { d.Umin -= s.Umax; d.Umax -= s.Umin; }
    }

    static void Mul32(ref RegState d, RegState s)
    {
        ulong umax = (ulong)d.U32Max * s.U32Max, umin = (ulong)d.U32Min * s.U32Min;
        if (umax > uint.MaxValue || umin > uint.MaxValue) { d.U32Min = 0; d.U32Max = uint.MaxValue; }
        else { d.U32Min = (uint)umin; d.U32Max = (uint)umax; }
        long[] p = [(long)d.S32Min * s.S32Min, (long)d.S32Min * s.S32Max, (long)d.S32Max * s.S32Min, (long)d.S32Max * s.S32Max];
        if (p.Any(x => x < int.MinValue || x > int.MaxValue)) { d.S32Min = int.MinValue; d.S32Max = int.MaxValue; }
        else { d.S32Min = (int)p.Min(); d.S32Max = (int)p.Max(); }
    }

    static void Mul64(ref RegState d, RegState s)
    {
        UInt128 umax = (UInt128)d.Umax * s.Umax, umin = (UInt128)d.Umin * s.Umin;
        if (umax > ulong.MaxValue || umin > ulong.MaxValue) { d.Umin = 0; d.Umax = ulong.MaxValue; }
        else { d.Umin = (ulong)umin; d.Umax = (ulong)umax; }
        Int128[] p = [(Int128)d.Smin * s.Smin, (Int128)d.Smin * s.Smax, (Int128)d.Smax * s.Smin, (Int128)d.Smax * s.Smax];
        if (p.Any(x => x < long.MinValue || x > long.MaxValue)) { d.Smin = long.MinValue; d.Smax = long.MaxValue; }
        else { d.Smin = (long)p.Min(); d.Smax = (long)p.Max(); }
    }

    static void SignFromUnsigned32(ref RegState d)
    {
        if ((int)d.U32Min <= (int)d.U32Max) { d.S32Min = (int)d.U32Min; d.S32Max = (int)d.U32Max; }
        else { d.S32Min = int.MinValue; d.S32Max = int.MaxValue; }
    }

    static void SignFromUnsigned64(ref RegState d)
    {
        if ((long)d.Umin <= (long)d.Umax) { d.Smin = (long)d.Umin; d.Smax = (long)d.Umax; }
        else { d.Smin = long.MinValue; d.Smax = long.MaxValue; }
    }

    static void And32(ref RegState d, RegState s)
    {
        var t = d.VarOff.Subreg;
        if (s.VarOff.Subreg.IsConst && t.IsConst) { d.MarkKnown32((uint)t.Value); return; }
        d.U32Min = (uint)t.Value;
        d.U32Max = Math.Min(d.U32Max, s.U32Max);
        SignFromUnsigned32(ref d);
    }

    static void And64(ref RegState d, RegState s)
    {
        if (s.VarOff.IsConst && d.VarOff.IsConst) { d.MarkKnown(d.VarOff.Value); return; }
        d.Umin = d.VarOff.Value;
        d.Umax = Math.Min(d.Umax, s.Umax);
        SignFromUnsigned64(ref d);
        d.UpdateBounds();
    }

    static void Or32(ref RegState d, RegState s)
    {
        var t = d.VarOff.Subreg;
        if (s.VarOff.Subreg.IsConst && t.IsConst) { d.MarkKnown32((uint)t.Value); return; }
        d.U32Min = Math.Max(d.U32Min, s.U32Min);
        d.U32Max = (uint)(t.Value | t.Mask);
        SignFromUnsigned32(ref d);
    }

    static void Or64(ref RegState d, RegState s)
    {
        if (s.VarOff.IsConst && d.VarOff.IsConst) { d.MarkKnown(d.VarOff.Value); return; }
        d.Umin = Math.Max(d.Umin, s.Umin);
        d.Umax = d.VarOff.Value | d.VarOff.Mask;
        SignFromUnsigned64(ref d);
        d.UpdateBounds();
    }

    static void Xor32(ref RegState d, RegState s)
    {
        var t = d.VarOff.Subreg;
        if (s.VarOff.Subreg.IsConst && t.IsConst) { d.MarkKnown32((uint)t.Value); return; }
        d.U32Min = (uint)t.Value;
        d.U32Max = (uint)(t.Value | t.Mask);
        SignFromUnsigned32(ref d);
    }

    static void Xor64(ref RegState d, RegState s)
    {
        if (s.VarOff.IsConst && d.VarOff.IsConst) { d.MarkKnown(d.VarOff.Value); return; }
        d.Umin = d.VarOff.Value;
        d.Umax = d.VarOff.Value | d.VarOff.Mask;
        SignFromUnsigned64(ref d);
        d.UpdateBounds();
    }

    static void Lsh32Bounds(ref RegState d, ulong umin, ulong umax)
    {
        d.S32Min = int.MinValue; d.S32Max = int.MaxValue;
        if (umax > 31 || d.U32Max > 1UL << (int)(31 - umax)) { d.U32Min = 0; d.U32Max = uint.MaxValue; }
        else { d.U32Min <<= (int)umin; d.U32Max <<= (int)umax; }
    }

    static void Lsh32(ref RegState d, RegState s)
    {
        var sub = d.VarOff.Subreg;
        Lsh32Bounds(ref d, s.U32Min, s.U32Max);
        d.VarOff = sub.Lsh((int)s.U32Min).Subreg;
        d.Unbound64();
        d.UpdateBounds();
    }

    static void Lsh64(ref RegState d, RegState s)
    {
        ulong umin = s.Umin, umax = s.Umax;
        // x << 32 is the low half's signed value times 2^32, so the 32-bit signed range gives the result's.
        bool by32 = umin == 32 && umax == 32;
        d.Smax = by32 ? (long)d.S32Max << 32 : long.MaxValue;
        d.Smin = by32 ? (long)d.S32Min << 32 : long.MinValue;
        if (d.Umax > 1UL << (int)(63 - umax)) { d.Umin = 0; d.Umax = ulong.MaxValue; }
        else { d.Umin <<= (int)umin; d.Umax <<= (int)umax; }
        Lsh32Bounds(ref d, umin, umax);
        d.VarOff = d.VarOff.Lsh((int)umin);
        d.UpdateBounds();
    }

    static void Rsh32(ref RegState d, RegState s)
    {
        var sub = d.VarOff.Subreg;
        d.S32Min = int.MinValue; d.S32Max = int.MaxValue;
        d.VarOff = sub.Rsh((int)s.U32Min);
        d.U32Min >>= (int)s.U32Max;
        d.U32Max >>= (int)s.U32Min;
        d.Unbound64();
        d.UpdateBounds();
    }

    static void Rsh64(ref RegState d, RegState s)
    {
        d.Smin = long.MinValue; d.Smax = long.MaxValue;
        d.VarOff = d.VarOff.Rsh((int)s.Umin);
        d.Umin >>= (int)s.Umax;
        d.Umax >>= (int)s.Umin;
        d.Unbound32();
        d.UpdateBounds();
    }

    static void Arsh32(ref RegState d, RegState s)
    {
        int sh = (int)s.U32Min;
        d.S32Min >>= sh;
        d.S32Max >>= sh;
        d.VarOff = d.VarOff.Subreg.Arsh(sh, 32);
        d.U32Min = 0; d.U32Max = uint.MaxValue;
        d.Unbound64();
        d.UpdateBounds();
    }

    static void Arsh64(ref RegState d, RegState s)
    {
        int sh = (int)s.Umin;
        d.Smin >>= sh;
        d.Smax >>= sh;
        d.VarOff = d.VarOff.Arsh(sh, 64);
        d.Umin = 0; d.Umax = ulong.MaxValue;
        d.Unbound32();
        d.UpdateBounds();
    }
}
