using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// ALU and ALU64: arithmetic, logic, shifts, moves (with sign extension), negation, byte swaps.
/// 32-bit operations work on int32 IL values and zero-extend the result (<c>conv.u8</c>); shift
/// counts are masked as the interpreter masks them; division and modulo call <see cref="Semantics"/>
/// so their edge cases (x / 0, INT_MIN / -1) are the interpreter's by construction.
/// </summary>
internal static class AluEmitter
{
    static readonly MethodInfo s_div64 = Method(nameof(Semantics.Div64));
    static readonly MethodInfo s_div32 = Method(nameof(Semantics.Div32));
    static readonly MethodInfo s_mod64 = Method(nameof(Semantics.Mod64));
    static readonly MethodInfo s_mod32 = Method(nameof(Semantics.Mod32));
    static readonly MethodInfo s_sdiv64 = Method(nameof(Semantics.SDiv64));
    static readonly MethodInfo s_sdiv32 = Method(nameof(Semantics.SDiv32));
    static readonly MethodInfo s_smod64 = Method(nameof(Semantics.SMod64));
    static readonly MethodInfo s_smod32 = Method(nameof(Semantics.SMod32));
    static readonly MethodInfo s_swap16 = Method(nameof(Semantics.Swap16));
    static readonly MethodInfo s_swap32 = Method(nameof(Semantics.Swap32));
    static readonly MethodInfo s_swap64 = Method(nameof(Semantics.Swap64));
    static readonly MethodInfo s_throwDivision = typeof(JitClosure).GetMethod(nameof(JitClosure.ThrowDivisionByZero))!;

    static MethodInfo Method(string name) => typeof(Semantics).GetMethod(name, [typeof(ulong), typeof(ulong)])
        ?? typeof(Semantics).GetMethod(name, [typeof(ulong)])
        ?? throw new MissingMethodException(nameof(Semantics), name);

    public static void Emit(EmitContext c, Instruction ins)
    {
        bool is64 = ins.Class == InstructionClass.Alu64;
        int d = ins.Dst;
        switch (ins.AluOp)
        {
            // In the opcode table's order (Op); div and mod share their cases, at div's place.
            case AluOp.Add: Binary(c, ins, is64, OpCodes.Add); break;
            case AluOp.Sub: Binary(c, ins, is64, OpCodes.Sub); break;
            case AluOp.Mul: Binary(c, ins, is64, OpCodes.Mul); break;

            case AluOp.Div or AluOp.Mod when !ins.SourceIsReg && ins.Imm != 0 && ins.Offset == 0:
                // rd = rd / imm   (a non-zero immediate: no zero check; 32-bit: (uint)rd / (uint)imm)
                Binary(c, ins, is64, ins.AluOp == AluOp.Div ? OpCodes.Div_Un : OpCodes.Rem_Un);
                break;

            case AluOp.Div or AluOp.Mod:
                // rd = Semantics.Div64(rd, src)   (Div32, SDiv64, Mod64, ... alike)
                bool signed = ins.Offset != 0, div = ins.AluOp == AluOp.Div;
                c.LdReg(d);
                LoadSource64(c, ins);
                c.Call((div, signed, is64) switch
                {
                    (true, false, true) => s_div64,
                    (true, false, false) => s_div32,
                    (true, true, true) => s_sdiv64,
                    (true, true, false) => s_sdiv32,
                    (false, false, true) => s_mod64,
                    (false, false, false) => s_mod32,
                    (false, true, true) => s_smod64,
                    (false, true, false) => s_smod32,
                });
                c.StReg(d);
                break;

            case AluOp.Or: Binary(c, ins, is64, OpCodes.Or); break;
            case AluOp.And: Binary(c, ins, is64, OpCodes.And); break;
            case AluOp.Lsh: Shift(c, ins, is64, OpCodes.Shl); break;
            case AluOp.Rsh: Shift(c, ins, is64, OpCodes.Shr_Un); break;

            case AluOp.Neg:
                // rd = -rd   (32-bit: rd = (uint)-(int)rd)
                if (is64) { c.LdReg(d); c.Op(OpCodes.Neg); }
                else { c.LdReg32(d); c.Op(OpCodes.Neg); c.Op(OpCodes.Conv_U8); }
                c.StReg(d);
                break;

            case AluOp.Xor: Binary(c, ins, is64, OpCodes.Xor); break;

            case AluOp.Mov:
                Mov(c, ins, is64);
                break;

            case AluOp.Arsh: Shift(c, ins, is64, OpCodes.Shr); break;

            case AluOp.End:
                End(c, ins, is64);
                break;

            default:
                throw c.Error($"unsupported ALU operation 0x{(byte)ins.AluOp:x2}");
        }
    }

    /// <summary>
    /// div/mod whose divisor the verifier proved non-zero: the x / 0 and x % 0 cases cannot occur, so the
    /// unsigned forms are one IL <c>div.un</c>/<c>rem.un</c>, behind a guard that faults if the divisor is zero
    /// after all (a wrong fact must not become a <see cref="DivideByZeroException"/>; docs/jit.md, "Runtime
    /// guards"). Signed forms keep the Semantics call (INT_MIN / -1 is defined in eBPF and traps in IL);
    /// 32-bit forms stay out of line in programs with local calls (see docs/jit.md, RyuJIT workarounds).
    /// </summary>
    public static void EmitDivNonZero(EmitContext c, Instruction ins)
    {
        bool is64 = ins.Class == InstructionClass.Alu64, signed = ins.Offset != 0;
        if (signed || !ins.SourceIsReg || (!is64 && c.Shape.HasLocalCalls))
        {
            c.Note("fact: divisor non-zero (signed or 32-bit with local calls: Semantics call kept)");
            Emit(c, ins);
            return;
        }
        c.Note("fact: divisor non-zero, x / 0 case removed, guarded");
        bool modulo = ins.AluOp == AluOp.Mod;
        // if (rs == 0) closure.ThrowDivisionByZero(index, modulo)   (32-bit: (uint)rs == 0)
        var nonZero = c.DefineLabel();
        if (is64) c.LdReg(ins.Src); else c.LdReg32(ins.Src);
        c.Brtrue(nonZero);
        c.Ldarg(0);
        c.LdcI4(c.Index);
        c.LdcI4(modulo ? 1 : 0);
        c.Call(s_throwDivision);
        c.MarkLabel(nonZero);
        var op = modulo ? OpCodes.Rem_Un : OpCodes.Div_Un;
        // rd = rd / rs   (32-bit: (uint)rd / (uint)rs, zero-extended)
        Binary(c, ins, is64, op);
    }

    /// <summary>rd = rd OP src; 32-bit: rd = (uint)((uint)rd OP (uint)src).</summary>
    static void Binary(EmitContext c, Instruction ins, bool is64, OpCode op)
    {
        if (is64)
        {
            c.LdReg(ins.Dst);
            LoadSource64(c, ins);
            c.Op(op);
        }
        else
        {
            c.LdReg32(ins.Dst);
            LoadSource32(c, ins);
            c.Op(op);
            c.Op(OpCodes.Conv_U8);
        }
        c.StReg(ins.Dst);
    }

    /// <summary>rd = rd SHIFT (src &amp; 63); 32-bit: rd = (uint)((uint)rd SHIFT (src &amp; 31)), arithmetic shifts on the signed value.</summary>
    static void Shift(EmitContext c, Instruction ins, bool is64, OpCode op)
    {
        int mask = is64 ? 63 : 31;
        if (is64) c.LdReg(ins.Dst); else c.LdReg32(ins.Dst);
        if (ins.SourceIsReg)
        {
            c.LdReg(ins.Src);
            c.Op(OpCodes.Conv_I4);
            c.LdcI4(mask);
            c.Op(OpCodes.And);
        }
        else c.LdcI4(ins.Imm & mask);
        c.Op(op);
        if (!is64) c.Op(OpCodes.Conv_U8);
        c.StReg(ins.Dst);
    }

    static void Mov(EmitContext c, Instruction ins, bool is64)
    {
        int d = ins.Dst;
        if (!ins.SourceIsReg)
        {
            // rd = imm   (64-bit: sign-extended; 32-bit: zero-extended)
            c.LdcI8(is64 ? ins.Imm : (long)(uint)ins.Imm);
            c.StReg(d);
            return;
        }
        c.LdReg(ins.Src);
        switch (is64, ins.Offset)
        {
            // rd = (s8)rs, (s16)rs, (s32)rs, sign-extended to 64 bits
            case (true, 8): c.Op(OpCodes.Conv_I1); c.Op(OpCodes.Conv_I8); break;
            case (true, 16): c.Op(OpCodes.Conv_I2); c.Op(OpCodes.Conv_I8); break;
            case (true, 32): c.Op(OpCodes.Conv_I4); c.Op(OpCodes.Conv_I8); break;
            // rd = rs
            case (true, _): break;
            // wd = (s8)ws, (s16)ws: sign-extended to 32 bits, then zero-extended
            case (false, 8): c.Op(OpCodes.Conv_I1); c.Op(OpCodes.Conv_U8); break;
            case (false, 16): c.Op(OpCodes.Conv_I2); c.Op(OpCodes.Conv_U8); break;
            // wd = ws
            default: c.Op(OpCodes.Conv_U4); c.Op(OpCodes.Conv_U8); break;
        }
        c.StReg(d);
    }

    static void End(EmitContext c, Instruction ins, bool is64)
    {
        int d = ins.Dst;
        if (!is64 && !ins.SourceIsReg)
        {
            // rd = le16/le32/le64 rd: the host is little-endian, so only the truncation remains
            if (ins.Imm == 64) { c.Op(OpCodes.Nop); return; }
            c.LdReg(d);
            c.Op(ins.Imm == 16 ? OpCodes.Conv_U2 : OpCodes.Conv_U4);
            c.Op(OpCodes.Conv_U8);
            c.StReg(d);
            return;
        }
        // rd = be16/be32/be64 rd (ALU) or bswap16/32/64 rd (ALU64): Semantics.SwapN(rd)
        c.LdReg(d);
        c.Call(ins.Imm switch { 16 => s_swap16, 32 => s_swap32, _ => s_swap64 });
        c.StReg(d);
    }

    /// <summary>Pushes the source operand as a 64-bit value: rs, or imm sign-extended.</summary>
    public static void LoadSource64(EmitContext c, Instruction ins)
    {
        if (ins.SourceIsReg) c.LdReg(ins.Src);
        else c.LdcI8(ins.Imm);
    }

    /// <summary>Pushes the source operand as a 32-bit value: (uint)rs, or (uint)imm.</summary>
    public static void LoadSource32(EmitContext c, Instruction ins)
    {
        if (ins.SourceIsReg) c.LdReg32(ins.Src);
        else c.LdcI4(ins.Imm);
    }
}
