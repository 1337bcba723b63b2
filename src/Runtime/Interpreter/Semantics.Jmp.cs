using System.Runtime.CompilerServices;
using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// The jump conditions of JMP (64-bit operands) and JMP32 (the low halves), in operation-code order, and the
/// table-driven entry points the test oracles use: <see cref="Alu(Instruction, ulong, ulong)"/> and
/// <see cref="Condition"/> dispatch on the opcode table's names to the same methods the interpreter inlines.
/// </summary>
public static partial class Semantics
{
    // JMP: 64-bit comparisons.

    /// <summary>jeq: equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jeq(ulong a, ulong b) => a == b;

    /// <summary>jgt: unsigned greater.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jgt(ulong a, ulong b) => a > b;

    /// <summary>jge: unsigned greater or equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jge(ulong a, ulong b) => a >= b;

    /// <summary>jset: the operands share a set bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jset(ulong a, ulong b) => (a & b) != 0;

    /// <summary>jne: not equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jne(ulong a, ulong b) => a != b;

    /// <summary>jsgt: signed greater.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jsgt(ulong a, ulong b) => (long)a > (long)b;

    /// <summary>jsge: signed greater or equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jsge(ulong a, ulong b) => (long)a >= (long)b;

    /// <summary>jlt: unsigned less.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jlt(ulong a, ulong b) => a < b;

    /// <summary>jle: unsigned less or equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jle(ulong a, ulong b) => a <= b;

    /// <summary>jslt: signed less.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jslt(ulong a, ulong b) => (long)a < (long)b;

    /// <summary>jsle: signed less or equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jsle(ulong a, ulong b) => (long)a <= (long)b;


    // JMP32: comparisons of the low 32 bits.

    /// <summary>jeq32: equal (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jeq32(ulong a, ulong b) => (uint)a == (uint)b;

    /// <summary>jgt32: unsigned greater (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jgt32(ulong a, ulong b) => (uint)a > (uint)b;

    /// <summary>jge32: unsigned greater or equal (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jge32(ulong a, ulong b) => (uint)a >= (uint)b;

    /// <summary>jset32: the operands share a set bit (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jset32(ulong a, ulong b) => ((uint)a & (uint)b) != 0;

    /// <summary>jne32: not equal (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jne32(ulong a, ulong b) => (uint)a != (uint)b;

    /// <summary>jsgt32: signed greater (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jsgt32(ulong a, ulong b) => (int)a > (int)b;

    /// <summary>jsge32: signed greater or equal (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jsge32(ulong a, ulong b) => (int)a >= (int)b;

    /// <summary>jlt32: unsigned less (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jlt32(ulong a, ulong b) => (uint)a < (uint)b;

    /// <summary>jle32: unsigned less or equal (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jle32(ulong a, ulong b) => (uint)a <= (uint)b;

    /// <summary>jslt32: signed less (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jslt32(ulong a, ulong b) => (int)a < (int)b;

    /// <summary>jsle32: signed less or equal (low 32 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Jsle32(ulong a, ulong b) => (int)a <= (int)b;

    /// <summary>
    /// Whether the conditional jump <paramref name="op"/> (JMP, or JMP32 when <paramref name="jmp32"/>) is taken
    /// with <paramref name="dst"/> and <paramref name="src"/> (a register's value or the sign-extended immediate).
    /// </summary>
    public static bool Condition(JmpOp op, bool jmp32, ulong dst, ulong src) => jmp32
        ? op switch
        {
            JmpOp.Jeq => Jeq32(dst, src), JmpOp.Jgt => Jgt32(dst, src), JmpOp.Jge => Jge32(dst, src), JmpOp.Jset => Jset32(dst, src),
            JmpOp.Jne => Jne32(dst, src), JmpOp.Jsgt => Jsgt32(dst, src), JmpOp.Jsge => Jsge32(dst, src), JmpOp.Jlt => Jlt32(dst, src),
            JmpOp.Jle => Jle32(dst, src), JmpOp.Jslt => Jslt32(dst, src), JmpOp.Jsle => Jsle32(dst, src),
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "not a conditional jump"),
        }
        : op switch
        {
            JmpOp.Jeq => Jeq(dst, src), JmpOp.Jgt => Jgt(dst, src), JmpOp.Jge => Jge(dst, src), JmpOp.Jset => Jset(dst, src),
            JmpOp.Jne => Jne(dst, src), JmpOp.Jsgt => Jsgt(dst, src), JmpOp.Jsge => Jsge(dst, src), JmpOp.Jlt => Jlt(dst, src),
            JmpOp.Jle => Jle(dst, src), JmpOp.Jslt => Jslt(dst, src), JmpOp.Jsle => Jsle(dst, src),
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "not a conditional jump"),
        };

    /// <summary>
    /// The value an ALU or ALU64 instruction <paramref name="ins"/> leaves in its destination, which held
    /// <paramref name="dst"/>; <paramref name="src"/> is the source register's value, or the immediate
    /// sign-extended to 64 bits. The offset selects sdiv/smod and movsx, the immediate the width of an END.
    /// </summary>
    public static ulong Alu(Instruction ins, ulong dst, ulong src) => ins.Opcode switch
    {
        Op.Add64Imm or Op.Add64Reg => Add64(dst, src),
        Op.Sub64Imm or Op.Sub64Reg => Sub64(dst, src),
        Op.Mul64Imm or Op.Mul64Reg => Mul64(dst, src),
        Op.Div64Imm or Op.Div64Reg => ins.Offset == 0 ? Div64(dst, src) : SDiv64(dst, src),
        Op.Or64Imm or Op.Or64Reg => Or64(dst, src),
        Op.And64Imm or Op.And64Reg => And64(dst, src),
        Op.Lsh64Imm or Op.Lsh64Reg => Lsh64(dst, src),
        Op.Rsh64Imm or Op.Rsh64Reg => Rsh64(dst, src),
        Op.Neg64 => Neg64(dst),
        Op.Mod64Imm or Op.Mod64Reg => ins.Offset == 0 ? Mod64(dst, src) : SMod64(dst, src),
        Op.Xor64Imm or Op.Xor64Reg => Xor64(dst, src),
        Op.Mov64Imm => src,
        Op.Mov64Reg => MovSx64(src, ins.Offset),
        Op.Arsh64Imm or Op.Arsh64Reg => Arsh64(dst, src),
        Op.Bswap => Bswap(dst, ins.Imm),

        Op.Add32Imm or Op.Add32Reg => Add32(dst, src),
        Op.Sub32Imm or Op.Sub32Reg => Sub32(dst, src),
        Op.Mul32Imm or Op.Mul32Reg => Mul32(dst, src),
        Op.Div32Imm or Op.Div32Reg => ins.Offset == 0 ? Div32(dst, src) : SDiv32(dst, src),
        Op.Or32Imm or Op.Or32Reg => Or32(dst, src),
        Op.And32Imm or Op.And32Reg => And32(dst, src),
        Op.Lsh32Imm or Op.Lsh32Reg => Lsh32(dst, src),
        Op.Rsh32Imm or Op.Rsh32Reg => Rsh32(dst, src),
        Op.Neg32 => Neg32(dst),
        Op.Mod32Imm or Op.Mod32Reg => ins.Offset == 0 ? Mod32(dst, src) : SMod32(dst, src),
        Op.Xor32Imm or Op.Xor32Reg => Xor32(dst, src),
        Op.Mov32Imm => Mov32(src),
        Op.Mov32Reg => MovSx32(src, ins.Offset),
        Op.Arsh32Imm or Op.Arsh32Reg => Arsh32(dst, src),
        Op.Le => Le(dst, ins.Imm),
        Op.Be => Bswap(dst, ins.Imm),
        _ => throw new ArgumentException($"not an ALU instruction: opcode {ins.Opcode:x2}", nameof(ins)),
    };
}
