namespace BpfJit.Frontend;

/// <summary>
/// Turns bytecode into instruction slots and checks that every slot is a valid encoding under
/// RFC 9669 (cpu v1-v4) with the kernel's reserved-field rules. Decoding never executes anything.
/// </summary>
public static class Decoder
{
    /// <summary>Decodes little-endian bytecode; throws <see cref="BpfDecodeException"/> on a bad encoding.</summary>
    public static Instruction[] Decode(ReadOnlySpan<byte> code)
    {
        if (code.Length % Instruction.Size != 0)
            throw new BpfDecodeException(code.Length / Instruction.Size,
                $"truncated program: {code.Length} bytes is not a multiple of {Instruction.Size}");
        var slots = new Instruction[code.Length / Instruction.Size];
        for (int i = 0; i < slots.Length; i++)
            slots[i] = Instruction.Read(code.Slice(i * Instruction.Size, Instruction.Size));
        Validate(slots);
        return slots;
    }

    /// <summary>Decodes a sequence of 64-bit instruction words.</summary>
    public static Instruction[] Decode(IEnumerable<ulong> words)
    {
        var slots = words.Select(Instruction.FromWord).ToArray();
        Validate(slots);
        return slots;
    }

    /// <summary>Checks every slot of a program; throws <see cref="BpfDecodeException"/> on the first bad one.</summary>
    public static void Validate(IReadOnlyList<Instruction> slots)
    {
        // Read as an array: an array read through IReadOnlyList<Instruction> is framework generic code (SZArrayHelper)
        // that RyuJIT compiles at a process's first program (docs/perf.md, "Cold start").
        var insns = slots as Instruction[] ?? [.. slots];
        for (int i = 0; i < insns.Length; i++)
        {
            var ins = insns[i];
            string? error = Check(ins);
            if (error != null) throw new BpfDecodeException(i, error);
            if (ins.IsLdImm64)
            {
                if (i + 1 >= insns.Length) throw new BpfDecodeException(i, "truncated ld_imm64: the second slot is missing");
                var next = insns[i + 1];
                if (next.Opcode != 0 || next.Dst != 0 || next.Src != 0 || next.Offset != 0)
                    throw new BpfDecodeException(i + 1, "invalid ld_imm64 second slot: opcode, registers and offset must be 0");
                i++;
            }
        }
    }

    /// <summary>Returns why one slot is not a valid instruction, or null when it is.</summary>
    public static string? Check(Instruction ins)
    {
        if (ins.Dst > BpfAbi.MaxRegister) return $"invalid dst register r{ins.Dst}";
        if (ins.Src > BpfAbi.MaxRegister && !(ins.Class is InstructionClass.Ld)) return $"invalid src register r{ins.Src}";
        return ins.Class switch
        {
            InstructionClass.Alu or InstructionClass.Alu64 => CheckAlu(ins),
            InstructionClass.Jmp or InstructionClass.Jmp32 => CheckJmp(ins),
            InstructionClass.Ld => CheckLd(ins),
            InstructionClass.Ldx => CheckLdx(ins),
            InstructionClass.St => CheckSt(ins),
            _ => CheckStx(ins),
        };
    }

    static string Unknown(Instruction ins) => $"unknown opcode 0x{ins.Opcode:x2}";

    static string? CheckAlu(Instruction ins)
    {
        bool is64 = ins.Class == InstructionClass.Alu64;
        var op = ins.AluOp;
        if ((byte)op > (byte)AluOp.End) return Unknown(ins);
        if (op == AluOp.End)
        {
            if (is64 && ins.SourceIsReg) return Unknown(ins);
            if (ins.Src != 0 || ins.Offset != 0) return "reserved fields of a byte swap must be 0";
            if (ins.Imm is not (16 or 32 or 64)) return $"invalid byte swap width {ins.Imm}";
            return null;
        }
        if (op == AluOp.Neg)
        {
            if (ins.SourceIsReg || ins.Src != 0 || ins.Offset != 0 || ins.Imm != 0) return "reserved fields of neg must be 0";
            return null;
        }
        if (ins.SourceIsReg ? ins.Imm != 0 : ins.Src != 0) return "reserved field of an ALU instruction is set";
        switch (op)
        {
            case AluOp.Div or AluOp.Mod:
                if (ins.Offset is not (0 or 1)) return $"invalid offset {ins.Offset} for {(op == AluOp.Div ? "div" : "mod")} (0 or 1)";
                return null;
            case AluOp.Mov:
                if (ins.Offset == 0) return null;
                if (!ins.SourceIsReg) return "sign-extending mov needs a register source";
                if (ins.Offset is 8 or 16 || (is64 && ins.Offset == 32)) return null;
                return $"invalid sign-extension width {ins.Offset}";
            default:
                return ins.Offset != 0 ? "reserved offset field of an ALU instruction is set" : null;
        }
    }

    static string? CheckJmp(Instruction ins)
    {
        bool is32 = ins.Class == InstructionClass.Jmp32;
        switch (ins.JmpOp)
        {
            case JmpOp.Ja:
                if (ins.SourceIsReg || ins.Src != 0 || ins.Dst != 0) return "reserved fields of ja must be 0";
                if (is32 ? ins.Offset != 0 : ins.Imm != 0) return "reserved fields of ja must be 0";
                return null;
            case JmpOp.Call:
                if (is32) return Unknown(ins);
                if (ins.SourceIsReg)
                    return ins.Src != 0 || ins.Offset != 0 || ins.Imm != 0 ? "reserved fields of callx must be 0" : null;
                if (ins.Dst != 0 || ins.Offset != 0) return "reserved fields of call must be 0";
                if (ins.Src > (byte)CallKind.Kfunc) return $"invalid call kind src={ins.Src}";
                return null;
            case JmpOp.Exit:
                if (is32 || ins.SourceIsReg) return Unknown(ins);
                return ins.Dst != 0 || ins.Src != 0 || ins.Offset != 0 || ins.Imm != 0 ? "reserved fields of exit must be 0" : null;
            case JmpOp.Jcond:
                // Only BPF_JMP | BPF_JCOND | BPF_K exists, and its only condition is may_goto (src 0).
                if (is32 || ins.SourceIsReg) return Unknown(ins);
                return ins.Src != 0 || ins.Dst != 0 || ins.Imm != 0 ? $"invalid may_goto imm {ins.Imm}" : null;
            case (JmpOp)0xf0:
                return Unknown(ins);
            default:
                return ins.SourceIsReg ? (ins.Imm != 0 ? "reserved imm field of a register jump is set" : null)
                                       : (ins.Src != 0 ? "reserved src field of an immediate jump is set" : null);
        }
    }

    static string? CheckLd(Instruction ins)
    {
        switch (ins.MemMode)
        {
            case MemMode.Imm:
                if (ins.MemSize != MemSize.DW) return Unknown(ins);
                if (ins.Src > (byte)Ld64Source.MapIdxValue) return $"invalid ld_imm64 source {ins.Src}";
                return ins.Offset != 0 ? "reserved offset field of ld_imm64 is set" : null;
            case MemMode.Abs or MemMode.Ind:
                // Legacy packet loads: valid encodings (RFC 9669 section 5.5), never allowed for SK_LOOKUP.
                if (ins.MemSize == MemSize.DW) return Unknown(ins);
                if (ins.Src > BpfAbi.MaxRegister) return $"invalid src register r{ins.Src}";
                if (ins.Dst != 0 || ins.Offset != 0 || (ins.MemMode == MemMode.Abs && ins.Src != 0))
                    return "reserved fields of a legacy packet load are set";
                return null;
            default:
                return Unknown(ins);
        }
    }

    static string? CheckLdx(Instruction ins)
    {
        if (ins.MemMode == MemMode.Mem || (ins.MemMode == MemMode.MemSx && ins.MemSize != MemSize.DW))
            return ins.Imm != 0 ? "reserved imm field of a load is set" : null;
        return Unknown(ins);
    }

    static string? CheckSt(Instruction ins)
    {
        if (ins.MemMode != MemMode.Mem) return Unknown(ins);
        return ins.Src != 0 ? "reserved src field of a store is set" : null;
    }

    static string? CheckStx(Instruction ins)
    {
        if (ins.MemMode == MemMode.Mem) return ins.Imm != 0 ? "reserved imm field of a store is set" : null;
        if (ins.MemMode != MemMode.Atomic) return Unknown(ins);
        if (ins.MemSize is not (MemSize.W or MemSize.DW)) return "atomic operations are 32 or 64 bits wide";
        return Enum.IsDefined((AtomicOp)ins.Imm) ? null : $"invalid atomic operation 0x{ins.Imm:x}";
    }
}

/// <summary>Turns instruction slots back into bytecode.</summary>
public static class Encoder
{
    /// <summary>Encodes slots as little-endian bytes (8 per slot).</summary>
    public static byte[] Encode(ReadOnlySpan<Instruction> slots)
    {
        var bytes = new byte[slots.Length * Instruction.Size];
        for (int i = 0; i < slots.Length; i++)
            slots[i].Write(bytes.AsSpan(i * Instruction.Size));
        return bytes;
    }
}
