namespace BpfJit.Verifier;

/// <summary>
/// Width changes of a scalar: truncation (the kernel's <c>coerce_reg_to_size</c>), sign extension
/// (<c>coerce_reg_to_size_sx</c>, <c>coerce_subreg_to_size_sx</c>) and byte swaps (<c>scalar_byte_swap</c>).
/// </summary>
internal static partial class ScalarAlu
{
    /// <summary>
    /// Keeps the low <paramref name="bytes"/> bytes (a narrow load, <c>le16</c>/<c>le32</c>, the truncation after a
    /// 16- or 32-bit swap). The unsigned range survives when its ends agree above the kept bytes.
    /// </summary>
    public static void CoerceToSize(ref RegState d, int bytes)
    {
        if (bytes >= 8) return;
        ulong mask = (1UL << (bytes * 8)) - 1;
        d.VarOff = d.VarOff.Cast(bytes);
        if ((d.Umin & ~mask) == (d.Umax & ~mask)) { d.Umin &= mask; d.Umax &= mask; }
        else { d.Umin = 0; d.Umax = mask; }
        d.Smin = (long)d.Umin;
        d.Smax = (long)d.Umax;
        // Below 32 bits the subregister changed too; it is derived again from the 64-bit range.
        if (bytes < 4) d.Unbound32();
        d.Sync();
    }

    /// <summary>
    /// Sign-extends the low <paramref name="bits"/> bits: into 64 bits (movsx, a sign-extending load) or,
    /// with <paramref name="alu32"/>, into the 32-bit subregister, which is then zero-extended (<c>w = (s8)w</c>).
    /// </summary>
    public static void SignExtend(ref RegState d, int bits, bool alu32)
    {
        if (alu32)
        {
            SignExtendSubreg(ref d, bits / 8);
            d.ZeroExtend32();
        }
        else SignExtend64(ref d, bits / 8);
        d.Sync();
    }

    static long SignExtendValue(ulong v, int size) => size switch { 1 => (sbyte)v, 2 => (short)v, _ => (int)v };

    /// <summary>
    /// 8, 16 or 32 bits into 64 (what Linux 6.18 gives). When the 32-bit signed range already lies within the
    /// extended width's range, the low half is unchanged and the 64-bit signed range is the 32-bit one (always so
    /// for 32 bits). Otherwise the result has a range only when the source's 64-bit signed range keeps its bits
    /// above the width fixed and its extended ends have one sign, and is the width's full range when not.
    /// </summary>
    static void SignExtend64(ref RegState d, int size)
    {
        if (d.VarOff.IsConst)
        {
            d.MarkKnown((ulong)SignExtendValue(d.VarOff.Value, size));
            return;
        }
        int bits = size * 8;
        long lo = -(1L << (bits - 1)), hi = (1L << (bits - 1)) - 1;
        if (d.S32Min >= lo && d.S32Max <= hi)
        {
            // The 32-bit ranges stay; the tnum is derived again from the ranges by Sync.
            d.Smin = d.S32Min;
            d.Smax = d.S32Max;
            d.Umin = 0;
            d.Umax = ulong.MaxValue;
            d.VarOff = Tnum.Unknown;
            return;
        }
        if (((ulong)d.Smax >> bits) == ((ulong)d.Smin >> bits))
        {
            long a = SignExtendValue((ulong)d.Smax, size), b = SignExtendValue((ulong)d.Smin, size);
            long max = Math.Max(a, b), min = Math.Min(a, b);
            if ((max >= 0) == (min >= 0))
            {
                d.Smin = min; d.Smax = max;
                d.S32Min = (int)min; d.S32Max = (int)max;
                d.Umin = (ulong)min; d.Umax = (ulong)max;
                d.U32Min = (uint)min; d.U32Max = (uint)max;
                d.VarOff = Tnum.Range((ulong)min, (ulong)max);
                return;
            }
        }
        d.Smin = lo; d.Smax = hi;
        d.S32Min = (int)lo; d.S32Max = (int)hi;
        d.Umin = 0; d.Umax = ulong.MaxValue;
        d.U32Min = 0; d.U32Max = uint.MaxValue;
        d.VarOff = Tnum.Unknown;
    }

    /// <summary>8 or 16 bits into the 32-bit subregister: the same rule as <see cref="SignExtend64"/> on the 32-bit ranges.</summary>
    static void SignExtendSubreg(ref RegState d, int size)
    {
        if (d.VarOff.IsConst)
        {
            long v = SignExtendValue(d.VarOff.Value, size);
            d.VarOff = Tnum.Const((ulong)v);
            d.S32Min = d.S32Max = (int)v;
            d.U32Min = d.U32Max = (uint)v;
            return;
        }
        int bits = size * 8;
        if (((uint)d.S32Max >> bits) == ((uint)d.S32Min >> bits))
        {
            int a = (int)SignExtendValue((uint)d.S32Max, size), b = (int)SignExtendValue((uint)d.S32Min, size);
            int max = Math.Max(a, b), min = Math.Min(a, b);
            if ((max >= 0) == (min >= 0))
            {
                d.S32Min = min; d.S32Max = max;
                d.U32Min = (uint)min; d.U32Max = (uint)max;
                d.VarOff = Tnum.Range((ulong)(long)min, (ulong)(long)max).Subreg;
                return;
            }
        }
        d.S32Min = -(1 << (bits - 1));
        d.S32Max = (1 << (bits - 1)) - 1;
        d.U32Min = 0; d.U32Max = uint.MaxValue;
        d.VarOff = Tnum.Unknown.Subreg;
    }

    /// <summary>
    /// <c>bswap16/32/64</c>, <c>be16/32/64</c> and <c>le16/32/64</c> on a little-endian machine: a swap
    /// (<paramref name="swap"/>: every bswap, and be) moves the tnum's bytes and re-derives the ranges from it;
    /// a 16- or 32-bit form then keeps only its low bytes; <c>le64</c> changes nothing.
    /// </summary>
    public static void ByteSwap(ref RegState d, int bits, bool swap)
    {
        if (swap)
        {
            d.VarOff = bits switch { 16 => d.VarOff.Bswap16(), 32 => d.VarOff.Bswap32(), _ => d.VarOff.Bswap64() };
            d.Unbound64();
            d.Unbound32();
        }
        if (bits is 16 or 32) CoerceToSize(ref d, bits / 8);
        d.Sync();
    }
}
