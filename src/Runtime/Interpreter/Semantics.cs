using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace BpfJit.Runtime;

/// <summary>
/// The instruction semantics that are more than one IL opcode: division and modulo edge cases,
/// shifts, sign extension, byte swaps and atomics. The interpreter calls these, and the JIT emits
/// <c>call</c>s to the same methods (small and static, so RyuJIT inlines them): the edge cases are
/// written once and both engines agree by construction. Results follow RFC 9669.
/// </summary>
/// <remarks>
/// The 32-bit division and modulo methods are not inlined on purpose: RyuJIT (.NET 10.0.12) inlining
/// <c>(uint)b</c> into a DynamicMethod with a local-call dispatch loop truncated the caller's copy of
/// <c>b</c> (a callee-saved register) to 32 bits. The differential test found it (seed 1, program
/// 1107649789: r6 came back as 0xffffffe3 instead of 0xffffffffffffffe3).
/// </remarks>
public static class Semantics
{
    /// <summary>64-bit unsigned division; x / 0 = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Div64(ulong a, ulong b) => b == 0 ? 0 : a / b;

    /// <summary>32-bit unsigned division, zero-extended; x / 0 = 0.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Div32(ulong a, ulong b) => (uint)b == 0 ? 0 : (uint)a / (uint)b;

    /// <summary>64-bit unsigned modulo; x % 0 = x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mod64(ulong a, ulong b) => b == 0 ? a : a % b;

    /// <summary>32-bit unsigned modulo, zero-extended; x % 0 = (u32)x.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Mod32(ulong a, ulong b) => (uint)b == 0 ? (uint)a : (uint)a % (uint)b;

    /// <summary>64-bit signed division; x / 0 = 0, LLONG_MIN / -1 = LLONG_MIN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SDiv64(ulong a, ulong b)
    {
        long x = (long)a, y = (long)b;
        if (y == 0) return 0;
        if (y == -1) return (ulong)unchecked(-x);
        return (ulong)(x / y);
    }

    /// <summary>32-bit signed division, zero-extended; x / 0 = 0, INT_MIN / -1 = INT_MIN.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong SDiv32(ulong a, ulong b)
    {
        int x = (int)a, y = (int)b;
        if (y == 0) return 0;
        if (y == -1) return (uint)unchecked(-x);
        return (uint)(x / y);
    }

    /// <summary>64-bit signed modulo (truncated); x % 0 = x, x % -1 = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SMod64(ulong a, ulong b)
    {
        long x = (long)a, y = (long)b;
        if (y == 0) return a;
        if (y == -1) return 0;
        return (ulong)(x % y);
    }

    /// <summary>32-bit signed modulo (truncated), zero-extended; x % 0 = (u32)x, x % -1 = 0.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong SMod32(ulong a, ulong b)
    {
        int x = (int)a, y = (int)b;
        if (y == 0) return (uint)x;
        if (y == -1) return 0;
        return (uint)(x % y);
    }

    /// <summary>Byte swap of the low 16 bits, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swap16(ulong a) => BinaryPrimitives.ReverseEndianness((ushort)a);

    /// <summary>Byte swap of the low 32 bits, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swap32(ulong a) => BinaryPrimitives.ReverseEndianness((uint)a);

    /// <summary>Byte swap of all 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swap64(ulong a) => BinaryPrimitives.ReverseEndianness(a);

    /// <summary>Atomic 64-bit xor; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ulong AtomicXor64(ulong address, ulong value)
    {
        ref ulong cell = ref *(ulong*)address;
        ulong old = Volatile.Read(ref cell);
        while (true)
        {
            ulong seen = Interlocked.CompareExchange(ref cell, old ^ value, old);
            if (seen == old) return old;
            old = seen;
        }
    }

    /// <summary>Atomic 32-bit xor; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe uint AtomicXor32(ulong address, uint value)
    {
        ref uint cell = ref *(uint*)address;
        uint old = Volatile.Read(ref cell);
        while (true)
        {
            uint seen = Interlocked.CompareExchange(ref cell, old ^ value, old);
            if (seen == old) return old;
            old = seen;
        }
    }

    /// <summary>
    /// Applies atomic operation <paramref name="op"/> (an <see cref="Frontend.AtomicOp"/> value) of
    /// 32 or 64 bits at <paramref name="address"/>. Returns the value the instruction writes back to
    /// its source register (the old value for fetch forms and xchg; for cmpxchg, the old value that
    /// goes to r0); plain forms return <paramref name="src"/> unchanged.
    /// </summary>
    public static unsafe ulong Atomic(int op, bool is64, ulong address, ulong src, ulong r0)
    {
        if (is64)
        {
            ref ulong cell = ref *(ulong*)address;
            return op switch
            {
                0x00 or 0x01 => Interlocked.Add(ref cell, src) - src,
                0x40 or 0x41 => Interlocked.Or(ref cell, src),
                0x50 or 0x51 => Interlocked.And(ref cell, src),
                0xa0 or 0xa1 => AtomicXor64(address, src),
                0xe1 => Interlocked.Exchange(ref cell, src),
                0xf1 => Interlocked.CompareExchange(ref cell, src, r0),
                _ => throw new InvalidOperationException($"invalid atomic operation 0x{op:x}"),
            };
        }
        ref uint c32 = ref *(uint*)address;
        uint s = (uint)src;
        return op switch
        {
            0x00 or 0x01 => Interlocked.Add(ref c32, s) - s,
            0x40 or 0x41 => Interlocked.Or(ref c32, s),
            0x50 or 0x51 => Interlocked.And(ref c32, s),
            0xa0 or 0xa1 => AtomicXor32(address, s),
            0xe1 => Interlocked.Exchange(ref c32, s),
            0xf1 => Interlocked.CompareExchange(ref c32, s, (uint)r0),
            _ => throw new InvalidOperationException($"invalid atomic operation 0x{op:x}"),
        };
    }
}
