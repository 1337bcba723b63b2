namespace BpfJit.Frontend;

/// <summary>
/// Factory methods for instructions, for tests and generators:
/// <c>Ins.Mov64(0, 1)</c>, <c>Ins.Load(MemSize.W, 2, 1, 4)</c>, <c>Ins.JumpIf(JmpOp.Jne, 0, 0, +3)</c>, <c>Ins.Exit()</c>.
/// Register operands are register numbers (0-10).
/// </summary>
public static class Ins
{
    static byte B(int reg) => checked((byte)reg);

    /// <summary>A 64-bit ALU operation with an immediate operand.</summary>
    public static Instruction Alu64(AluOp op, int dst, int imm) => new((byte)((byte)op | (byte)InstructionClass.Alu64), B(dst), 0, 0, imm);

    /// <summary>A 64-bit ALU operation with a register operand.</summary>
    public static Instruction Alu64Reg(AluOp op, int dst, int src) => new((byte)((byte)op | Op.SourceX | (byte)InstructionClass.Alu64), B(dst), B(src), 0, 0);

    /// <summary>A 32-bit ALU operation with an immediate operand.</summary>
    public static Instruction Alu32(AluOp op, int dst, int imm) => new((byte)((byte)op | (byte)InstructionClass.Alu), B(dst), 0, 0, imm);

    /// <summary>A 32-bit ALU operation with a register operand.</summary>
    public static Instruction Alu32Reg(AluOp op, int dst, int src) => new((byte)((byte)op | Op.SourceX | (byte)InstructionClass.Alu), B(dst), B(src), 0, 0);

    /// <summary>Signed division or modulo (offset 1) with a register operand.</summary>
    public static Instruction SignedReg(AluOp op, bool is64, int dst, int src) =>
        Alu(op, is64, dst, src) with { Offset = 1 };

    static Instruction Alu(AluOp op, bool is64, int dst, int src) => is64 ? Alu64Reg(op, dst, src) : Alu32Reg(op, dst, src);

    /// <summary>dst = imm (64-bit, sign-extended).</summary>
    public static Instruction Mov64(int dst, int imm) => Alu64(AluOp.Mov, dst, imm);

    /// <summary>dst = src (64-bit).</summary>
    public static Instruction Mov64Reg(int dst, int src) => Alu64Reg(AluOp.Mov, dst, src);

    /// <summary>dst = (sN)src: sign-extending move from 8, 16 or 32 bits.</summary>
    public static Instruction MovSx(bool is64, int dst, int src, int bits) => Alu(AluOp.Mov, is64, dst, src) with { Offset = checked((short)bits) };

    /// <summary>dst = -dst.</summary>
    public static Instruction Neg(bool is64, int dst) => is64 ? Alu64(AluOp.Neg, dst, 0) : Alu32(AluOp.Neg, dst, 0);

    /// <summary>Byte-order conversion: le/be (32-bit class) or bswap (64-bit class) of 16, 32 or 64 bits.</summary>
    public static Instruction Swap(string kind, int dst, int bits) => kind switch
    {
        "le" => new Instruction(Op.Le, B(dst), 0, 0, bits),
        "be" => new Instruction(Op.Be, B(dst), 0, 0, bits),
        "bswap" => new Instruction(Op.Bswap, B(dst), 0, 0, bits),
        _ => throw new ArgumentException("kind must be le, be or bswap", nameof(kind)),
    };

    /// <summary>The two slots of dst = imm64.</summary>
    public static Instruction[] LdImm64(int dst, ulong value) =>
        [new Instruction(Op.LdImm64, B(dst), 0, 0, (int)(uint)value), new Instruction(0, 0, 0, 0, (int)(uint)(value >> 32))];

    /// <summary>dst = *(size *)(src + offset).</summary>
    public static Instruction Load(MemSize size, int dst, int src, short offset) =>
        new((byte)((byte)MemMode.Mem | (byte)size | (byte)InstructionClass.Ldx), B(dst), B(src), offset, 0);

    /// <summary>dst = *(sN *)(src + offset), sign-extending.</summary>
    public static Instruction LoadSx(MemSize size, int dst, int src, short offset) =>
        new((byte)((byte)MemMode.MemSx | (byte)size | (byte)InstructionClass.Ldx), B(dst), B(src), offset, 0);

    /// <summary>*(size *)(dst + offset) = src.</summary>
    public static Instruction Store(MemSize size, int dst, short offset, int src) =>
        new((byte)((byte)MemMode.Mem | (byte)size | (byte)InstructionClass.Stx), B(dst), B(src), offset, 0);

    /// <summary>*(size *)(dst + offset) = imm.</summary>
    public static Instruction StoreImm(MemSize size, int dst, short offset, int imm) =>
        new((byte)((byte)MemMode.Mem | (byte)size | (byte)InstructionClass.St), B(dst), 0, offset, imm);

    /// <summary>An atomic operation on *(u32/u64 *)(dst + offset) with src.</summary>
    public static Instruction Atomic(AtomicOp op, bool is64, int dst, short offset, int src) =>
        new((byte)((byte)MemMode.Atomic | (byte)(is64 ? MemSize.DW : MemSize.W) | (byte)InstructionClass.Stx), B(dst), B(src), offset, (int)op);

    /// <summary>goto +offset.</summary>
    public static Instruction Ja(short offset) => new(Op.Ja, 0, 0, offset, 0);

    /// <summary>gotol +offset (32-bit offset in imm).</summary>
    public static Instruction Ja32(int offset) => new(Op.Ja32, 0, 0, 0, offset);

    /// <summary>if dst OP imm goto +offset (JMP, or JMP32 when <paramref name="is32"/>).</summary>
    public static Instruction JumpIf(JmpOp op, int dst, int imm, short offset, bool is32 = false) =>
        new((byte)((byte)op | (byte)(is32 ? InstructionClass.Jmp32 : InstructionClass.Jmp)), B(dst), 0, offset, imm);

    /// <summary>if dst OP src goto +offset (JMP, or JMP32 when <paramref name="is32"/>).</summary>
    public static Instruction JumpIfReg(JmpOp op, int dst, int src, short offset, bool is32 = false) =>
        new((byte)((byte)op | Op.SourceX | (byte)(is32 ? InstructionClass.Jmp32 : InstructionClass.Jmp)), B(dst), B(src), offset, 0);

    /// <summary>call helper #id.</summary>
    public static Instruction Call(int helperId) => new(Op.Call, 0, 0, 0, helperId);

    /// <summary>call pc+offset (bpf-to-bpf).</summary>
    public static Instruction CallLocal(int offset) => new(Op.Call, 0, (byte)CallKind.Local, 0, offset);

    /// <summary>callx dst.</summary>
    public static Instruction CallX(int dst) => new(Op.CallX, B(dst), 0, 0, 0);

    /// <summary>exit.</summary>
    public static Instruction Exit() => new(Op.Exit, 0, 0, 0, 0);
}
