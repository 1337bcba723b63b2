namespace BpfJit.Frontend;

/// <summary>The instruction-set versions of clang's <c>-mcpu=v1..v4</c> (RFC 9669 conformance groups).</summary>
public static class CpuVersion
{
    /// <summary>
    /// The lowest cpu version that has every instruction of <paramref name="program"/>: v2 adds
    /// jlt/jle/jslt/jsle, v3 adds JMP32, atomics and local calls, v4 adds sdiv/smod, movsx,
    /// sign-extending loads, bswap, ja32 (and BpfJit counts callx there too).
    /// </summary>
    public static int Required(IReadOnlyList<Instruction> program)
    {
        int v = 1;
        for (int i = 0; i < program.Count; i++)
        {
            v = Math.Max(v, Required(program[i]));
            if (program[i].IsLdImm64) i++;
        }
        return v;
    }

    /// <summary>The lowest cpu version that has one instruction.</summary>
    public static int Required(Instruction ins)
    {
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                if (ins.AluOp is AluOp.Div or AluOp.Mod && ins.Offset == 1) return 4;
                if (ins.AluOp == AluOp.Mov && ins.Offset != 0) return 4;
                if (ins.AluOp == AluOp.End && ins.Class == InstructionClass.Alu64) return 4;
                return 1;
            case InstructionClass.Jmp32:
                return ins.Opcode == Op.Ja32 ? 4 : 3;
            case InstructionClass.Jmp:
                if (ins.Opcode == Op.CallX) return 4;
                if (ins.IsCall && ins.Src == (byte)CallKind.Local) return 3;
                return ins.JmpOp is JmpOp.Jlt or JmpOp.Jle or JmpOp.Jslt or JmpOp.Jsle ? 2 : 1;
            case InstructionClass.Ldx:
                return ins.MemMode == MemMode.MemSx ? 4 : 1;
            case InstructionClass.Stx:
                return ins.MemMode == MemMode.Atomic ? 3 : 1;
            default:
                return 1;
        }
    }
}
