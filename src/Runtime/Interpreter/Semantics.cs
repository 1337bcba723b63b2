using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// The concrete semantics of every eBPF instruction that computes a value or decides a jump, written once,
/// in the opcode table's order (<see cref="Op"/>: ALU64, ALU, JMP, JMP32, then loads). The interpreter's
/// dispatch calls these (small and static, so RyuJIT inlines them), the JIT emits <c>call</c>s to the ones
/// that are more than one IL opcode (division and modulo edge cases, byte swaps), and the verifier's soundness
/// tests use <see cref="Alu(Instruction, ulong, ulong)"/> and <see cref="Condition"/> as their oracle.
/// Results follow RFC 9669 and the kernel: shift counts are masked to the width, x / 0 = 0, x % 0 = x,
/// INT_MIN / -1 = INT_MIN, and a 32-bit result is zero-extended.
/// </summary>
/// <remarks>
/// The 32-bit division and modulo methods are not inlined on purpose: RyuJIT (.NET 10.0.12) inlining
/// <c>(uint)b</c> into a DynamicMethod with a local-call dispatch loop truncated the caller's copy of
/// <c>b</c> (a callee-saved register) to 32 bits. The differential test found it (seed 1, program
/// 1107649789: r6 came back as 0xffffffe3 instead of 0xffffffffffffffe3).
/// </remarks>
public static partial class Semantics
{
    // ALU64: 64-bit arithmetic, in operation-code order.

    /// <summary>64-bit add.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add64(ulong a, ulong b) => a + b;

    /// <summary>64-bit subtract.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sub64(ulong a, ulong b) => a - b;

    /// <summary>64-bit multiply (the low 64 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mul64(ulong a, ulong b) => a * b;

    /// <summary>64-bit unsigned division; x / 0 = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Div64(ulong a, ulong b) => b == 0 ? 0 : a / b;

    /// <summary>64-bit signed division (sdiv, offset 1); x / 0 = 0, LLONG_MIN / -1 = LLONG_MIN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SDiv64(ulong a, ulong b)
    {
        long x = (long)a, y = (long)b;
        if (y == 0) return 0;
        if (y == -1) return (ulong)unchecked(-x);
        return (ulong)(x / y);
    }

    /// <summary>64-bit or.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Or64(ulong a, ulong b) => a | b;

    /// <summary>64-bit and.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong And64(ulong a, ulong b) => a & b;

    /// <summary>64-bit left shift by the low 6 bits of <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Lsh64(ulong a, ulong b) => a << (int)(b & 63);

    /// <summary>64-bit logical right shift by the low 6 bits of <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Rsh64(ulong a, ulong b) => a >> (int)(b & 63);

    /// <summary>64-bit negation (two's complement; LLONG_MIN stays LLONG_MIN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Neg64(ulong a) => (ulong)-(long)a;

    /// <summary>64-bit unsigned modulo; x % 0 = x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mod64(ulong a, ulong b) => b == 0 ? a : a % b;

    /// <summary>64-bit signed modulo (smod, offset 1; truncated, the sign of the dividend); x % 0 = x, x % -1 = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SMod64(ulong a, ulong b)
    {
        long x = (long)a, y = (long)b;
        if (y == 0) return a;
        if (y == -1) return 0;
        return (ulong)(x % y);
    }

    /// <summary>64-bit exclusive or.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Xor64(ulong a, ulong b) => a ^ b;

    /// <summary>mov64 with the offset field: movsx of the low 8, 16 or 32 bits sign-extended to 64; any other offset a plain move.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MovSx64(ulong src, int bits) => bits switch
    {
        8 => SignExtend((sbyte)src),
        16 => SignExtend((short)src),
        32 => SignExtend((int)src),
        _ => src,
    };

    /// <summary>64-bit arithmetic right shift by the low 6 bits of <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Arsh64(ulong a, ulong b) => (ulong)((long)a >> (int)(b & 63));

    /// <summary>bswap16/32/64 (ALU64 END) and be16/32/64 on this little-endian host: the low <paramref name="bits"/> bits reversed, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Bswap(ulong a, int bits) => bits switch { 16 => Swap16(a), 32 => Swap32(a), _ => Swap64(a) };

    /// <summary>Byte swap of the low 16 bits, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swap16(ulong a) => BinaryPrimitives.ReverseEndianness((ushort)a);

    /// <summary>Byte swap of the low 32 bits, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swap32(ulong a) => BinaryPrimitives.ReverseEndianness((uint)a);

    /// <summary>Byte swap of all 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swap64(ulong a) => BinaryPrimitives.ReverseEndianness(a);

    // ALU: 32-bit arithmetic on the low halves, the result zero-extended, in operation-code order.

    /// <summary>32-bit add, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add32(ulong a, ulong b) => (uint)((uint)a + (uint)b);

    /// <summary>32-bit subtract, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Sub32(ulong a, ulong b) => (uint)((uint)a - (uint)b);

    /// <summary>32-bit multiply, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mul32(ulong a, ulong b) => (uint)((uint)a * (uint)b);

    /// <summary>32-bit unsigned division, zero-extended; x / 0 = 0.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Div32(ulong a, ulong b) => (uint)b == 0 ? 0 : (uint)a / (uint)b;

    /// <summary>32-bit signed division, zero-extended; x / 0 = 0, INT_MIN / -1 = INT_MIN.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong SDiv32(ulong a, ulong b)
    {
        int x = (int)a, y = (int)b;
        if (y == 0) return 0;
        if (y == -1) return (uint)unchecked(-x);
        return (uint)(x / y);
    }

    /// <summary>32-bit or, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Or32(ulong a, ulong b) => (uint)a | (uint)b;

    /// <summary>32-bit and, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong And32(ulong a, ulong b) => (uint)a & (uint)b;

    /// <summary>32-bit left shift by the low 5 bits of <paramref name="b"/>, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Lsh32(ulong a, ulong b) => (uint)a << (int)(b & 31);

    /// <summary>32-bit logical right shift by the low 5 bits of <paramref name="b"/>, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Rsh32(ulong a, ulong b) => (uint)a >> (int)(b & 31);

    /// <summary>32-bit negation, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Neg32(ulong a) => (uint)-(int)a;

    /// <summary>32-bit unsigned modulo, zero-extended; x % 0 = (u32)x.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Mod32(ulong a, ulong b) => (uint)b == 0 ? (uint)a : (uint)a % (uint)b;

    /// <summary>32-bit signed modulo (truncated), zero-extended; x % 0 = (u32)x, x % -1 = 0.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong SMod32(ulong a, ulong b)
    {
        int x = (int)a, y = (int)b;
        if (y == 0) return (uint)x;
        if (y == -1) return 0;
        return (uint)(x % y);
    }

    /// <summary>32-bit exclusive or, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Xor32(ulong a, ulong b) => (uint)a ^ (uint)b;

    /// <summary>mov32: the low half, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mov32(ulong src) => (uint)src;

    /// <summary>mov32 with the offset field: movsx of the low 8 or 16 bits sign-extended to 32, then zero-extended; any other offset a plain mov32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MovSx32(ulong src, int bits) => bits switch
    {
        8 => (uint)(int)(sbyte)src,
        16 => (uint)(int)(short)src,
        _ => (uint)src,
    };

    /// <summary>32-bit arithmetic right shift by the low 5 bits of <paramref name="b"/>, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Arsh32(ulong a, ulong b) => (uint)((int)a >> (int)(b & 31));

    /// <summary>le16/32/64: to little-endian, on this little-endian host the low <paramref name="bits"/> bits, zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Le(ulong a, int bits) => bits switch { 16 => (ushort)a, 32 => (uint)a, _ => a };

    // LDX | MEMSX: sign-extending loads (and movsx) widen a narrow signed value to 64 bits.

    /// <summary>A signed byte sign-extended to 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SignExtend(sbyte v) => (ulong)(long)v;

    /// <summary>A signed half-word sign-extended to 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SignExtend(short v) => (ulong)(long)v;

    /// <summary>A signed word sign-extended to 64 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SignExtend(int v) => (ulong)(long)v;
}
