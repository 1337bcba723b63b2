using System.Buffers.Binary;
using System.Numerics;

namespace BpfJit.Verifier;

/// <summary>
/// A tristate number (the kernel's <c>struct tnum</c>): every bit is known 0, known 1 or unknown.
/// A bit set in <see cref="Mask"/> is unknown; the other bits have the value of <see cref="Value"/>.
/// Invariant: <c>(Value &amp; Mask) == 0</c>.
/// </summary>
public readonly record struct Tnum(ulong Value, ulong Mask)
{
    /// <summary>Fully unknown: every bit may be 0 or 1.</summary>
    public static Tnum Unknown => new(0, ulong.MaxValue);

    /// <summary>A known constant.</summary>
    public static Tnum Const(ulong value) => new(value, 0);

    /// <summary>The smallest tnum containing every value in [min, max] (unsigned).</summary>
    public static Tnum Range(ulong min, ulong max)
    {
        ulong chi = min ^ max;
        int bits = chi == 0 ? 0 : 64 - BitOperations.LeadingZeroCount(chi);
        if (bits > 63) return Unknown;
        ulong delta = (1UL << bits) - 1;
        return new(min & ~delta, delta);
    }

    /// <summary>True when every bit is known.</summary>
    public bool IsConst => Mask == 0;

    /// <summary>True when the value is known to be <paramref name="value"/>.</summary>
    public bool Equals(ulong value) => Mask == 0 && Value == value;

    /// <summary>True when every bit is unknown.</summary>
    public bool IsUnknown => Mask == ulong.MaxValue;

    /// <summary>True when every value is a multiple of <paramref name="size"/> (a power of two).</summary>
    public bool IsAligned(ulong size) => size == 0 || ((Value | Mask) & (size - 1)) == 0;

    /// <summary>Shift left by a constant.</summary>
    public Tnum Lsh(int shift) => new(Value << shift, Mask << shift);

    /// <summary>Logical shift right by a constant.</summary>
    public Tnum Rsh(int shift) => new(Value >> shift, Mask >> shift);

    /// <summary>Arithmetic shift right by a constant, on 32 or 64 bits.</summary>
    public Tnum Arsh(int shift, int bits) => bits == 32
        ? new((uint)((int)(uint)Value >> shift), (uint)((int)(uint)Mask >> shift))
        : new((ulong)((long)Value >> shift), (ulong)((long)Mask >> shift));

    /// <summary>Addition.</summary>
    public static Tnum operator +(Tnum a, Tnum b)
    {
        ulong sm = a.Mask + b.Mask, sv = a.Value + b.Value, sigma = sm + sv;
        ulong chi = sigma ^ sv, mu = chi | a.Mask | b.Mask;
        return new(sv & ~mu, mu);
    }

    /// <summary>Subtraction.</summary>
    public static Tnum operator -(Tnum a, Tnum b)
    {
        ulong dv = a.Value - b.Value, alpha = dv + a.Mask, beta = dv - b.Mask;
        ulong chi = alpha ^ beta, mu = chi | a.Mask | b.Mask;
        return new(dv & ~mu, mu);
    }

    /// <summary>Bitwise and.</summary>
    public static Tnum operator &(Tnum a, Tnum b)
    {
        ulong alpha = a.Value | a.Mask, beta = b.Value | b.Mask, v = a.Value & b.Value;
        return new(v, alpha & beta & ~v);
    }

    /// <summary>Bitwise or.</summary>
    public static Tnum operator |(Tnum a, Tnum b)
    {
        ulong v = a.Value | b.Value, mu = a.Mask | b.Mask;
        return new(v, mu & ~v);
    }

    /// <summary>Bitwise exclusive or.</summary>
    public static Tnum operator ^(Tnum a, Tnum b)
    {
        ulong v = a.Value ^ b.Value, mu = a.Mask | b.Mask;
        return new(v & ~mu, mu);
    }

    /// <summary>
    /// Multiplication by long multiplication over the bits of <paramref name="a"/> (the kernel's tnum_mul): a known 1
    /// adds the shifted <paramref name="b"/>, an unknown bit keeps the union of the sums with and without it.
    /// </summary>
    public static Tnum operator *(Tnum a, Tnum b)
    {
        var acc = Const(0);
        while (a.Value != 0 || a.Mask != 0)
        {
            if ((a.Value & 1) != 0) acc += b;
            else if ((a.Mask & 1) != 0) acc = acc.Union(acc + b);
            a = a.Rsh(1);
            b = b.Lsh(1);
        }
        return acc;
    }

    /// <summary>The smallest tnum holding every value of this tnum and of <paramref name="b"/> (the kernel's tnum_union).</summary>
    public Tnum Union(Tnum b)
    {
        ulong v = Value & b.Value, mu = (Value ^ b.Value) | Mask | b.Mask;
        return new(v & ~mu, mu);
    }

    /// <summary>The values both tnums allow (both must describe the same value).</summary>
    public Tnum Intersect(Tnum b)
    {
        ulong v = Value | b.Value, mu = Mask & b.Mask;
        return new(v & ~mu, mu);
    }

    /// <summary>Truncates to the low <paramref name="bytes"/> bytes.</summary>
    public Tnum Cast(int bytes)
    {
        if (bytes >= 8) return this;
        ulong m = (1UL << (bytes * 8)) - 1;
        return new(Value & m, Mask & m);
    }

    /// <summary>The low 16 bits with their two bytes swapped (the kernel's <c>tnum_bswap16</c>); the upper bits are 0.</summary>
    public Tnum Bswap16() => new(BinaryPrimitives.ReverseEndianness((ushort)Value), BinaryPrimitives.ReverseEndianness((ushort)Mask));

    /// <summary>The low 32 bits with their bytes reversed (<c>tnum_bswap32</c>); the upper bits are 0.</summary>
    public Tnum Bswap32() => new(BinaryPrimitives.ReverseEndianness((uint)Value), BinaryPrimitives.ReverseEndianness((uint)Mask));

    /// <summary>All eight bytes reversed (<c>tnum_bswap64</c>).</summary>
    public Tnum Bswap64() => new(BinaryPrimitives.ReverseEndianness(Value), BinaryPrimitives.ReverseEndianness(Mask));

    /// <summary>The low 32 bits.</summary>
    public Tnum Subreg => Cast(4);

    /// <summary>This tnum with its low 32 bits cleared.</summary>
    public Tnum ClearSubreg => Rsh(32).Lsh(32);

    /// <summary>This tnum with its low 32 bits replaced by <paramref name="value"/>.</summary>
    public Tnum WithConstSubreg(uint value) => ClearSubreg | Const(value);

    /// <summary>Whether <paramref name="v"/> is one of the values this tnum allows.</summary>
    public bool Has(ulong v) => (v & ~Mask) == Value;

    /// <summary>
    /// The smallest value this tnum allows that is greater than <paramref name="z"/> (the kernel's tnum_step);
    /// the largest value it allows when none is greater, the smallest when <paramref name="z"/> is below all.
    /// </summary>
    public ulong Step(ulong z)
    {
        ulong max = Value | Mask;
        if (z >= max) return max;
        if (z < Value) return Value;
        // A member is Value + s for a submask s of Mask, so the answer is Value + the least submask above
        // d = z - Value. Counting upward through the mask bits alone: every bit outside the mask is set so a
        // carry runs past it, and so is every bit below d's highest bit outside the mask (a submask cannot
        // match d there, it must exceed d above it, so what lies below does not matter).
        ulong d = z - Value;
        ulong outside = d & ~Mask;
        ulong below = outside == 0 ? 0 : (1UL << (64 - System.Numerics.BitOperations.LeadingZeroCount(outside))) - 1;
        ulong filled = d | below | ~Mask;
        return Value | ((filled + 1) & Mask);
    }

    /// <summary>True when every value of <paramref name="b"/> is also a value of this tnum.</summary>
    public bool Contains(Tnum b)
    {
        if ((b.Mask & ~Mask) != 0) return false;
        return Value == (b.Value & ~Mask);
    }

    /// <summary>Prints like the kernel: <c>(0x0; 0xff)</c>.</summary>
    public override string ToString() => $"(0x{Value:x}; 0x{Mask:x})";
}
