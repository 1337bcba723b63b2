using System.Text;

namespace BpfJit.Frontend;

/// <summary>
/// Prints instructions in the syntax of <c>llvm-objdump -d</c> and <c>bpftool prog dump xlated</c>:
/// <c>r0 = *(u32 *)(r1 + 8)</c>, <c>if r1 &gt; 0x5 goto +3</c>, <c>w0 += w1</c>, <c>call bpf_sk_assign#124</c>.
/// </summary>
public static class Disassembler
{
    static readonly string[] s_aluOps = ["+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=", "end"];
    static readonly string[] s_jmpOps = ["goto", "==", ">", ">=", "&", "!=", "s>", "s>=", "call", "exit", "<", "<=", "s<", "s<="];

    /// <summary>Disassembles a whole program, one line per instruction, prefixed with its slot index.</summary>
    public static string Disassemble(IReadOnlyList<Instruction> slots)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < slots.Count; i++)
        {
            sb.Append(i.ToString().PadLeft(4)).Append(": ").AppendLine(Format(slots, i));
            if (slots[i].IsLdImm64) i++;
        }
        return sb.ToString();
    }

    /// <summary>Formats the instruction at slot <paramref name="index"/> (reading the second slot of an ld_imm64).</summary>
    public static string Format(IReadOnlyList<Instruction> slots, int index)
    {
        var ins = slots[index];
        if (ins.IsLdImm64)
            return FormatLdImm64(ins, index + 1 < slots.Count ? slots[index + 1] : default);
        return Format(ins);
    }

    /// <summary>Formats one instruction (an ld_imm64 shows only its low 32 bits; an invalid encoding shows why, like llvm-objdump's <c>&lt;unknown&gt;</c>).</summary>
    public static string Format(Instruction ins) => Decoder.Check(ins) is { } invalid ? $"<unknown: {invalid}>" : FormatValid(ins);

    static string FormatValid(Instruction ins) => ins.Class switch
    {
        InstructionClass.Alu or InstructionClass.Alu64 => FormatAlu(ins),
        InstructionClass.Jmp or InstructionClass.Jmp32 => FormatJmp(ins),
        InstructionClass.Ldx => $"r{ins.Dst} = *({(ins.MemMode == MemMode.MemSx ? 's' : 'u')}{Bits(ins.MemSize)} *)({Address(ins.Src, ins.Offset)})",
        InstructionClass.St => $"*(u{Bits(ins.MemSize)} *)({Address(ins.Dst, ins.Offset)}) = {ins.Imm}",
        InstructionClass.Stx => ins.MemMode == MemMode.Atomic ? FormatAtomic(ins)
            : $"*(u{Bits(ins.MemSize)} *)({Address(ins.Dst, ins.Offset)}) = r{ins.Src}",
        _ => FormatLd(ins),
    };

    static int Bits(MemSize size) => Op.Bytes(size) * 8;

    static string Address(int reg, short offset) =>
        offset < 0 ? $"r{reg} - {-(int)offset}" : $"r{reg} + {offset}";

    static string Hex(long value) => value < 0 ? $"-0x{(ulong)-value:x}" : $"0x{value:x}";

    static string Target(int offset) => offset < 0 ? $"{offset}" : $"+{offset}";

    static string FormatAlu(Instruction ins)
    {
        char r = ins.Class == InstructionClass.Alu64 ? 'r' : 'w';
        string dst = $"{r}{ins.Dst}";
        string src = ins.SourceIsReg ? $"{r}{ins.Src}" : ins.Imm.ToString();
        switch (ins.AluOp)
        {
            case AluOp.Neg:
                return $"{dst} = -{dst}";
            case AluOp.End:
                if (ins.Class == InstructionClass.Alu64) return $"r{ins.Dst} = bswap{ins.Imm} r{ins.Dst}";
                return $"r{ins.Dst} = {(ins.SourceIsReg ? "be" : "le")}{ins.Imm} r{ins.Dst}";
            case AluOp.Mov when ins.Offset != 0:
                return $"{dst} = (s{ins.Offset}){src}";
            case AluOp.Div or AluOp.Mod when ins.Offset == 1:
                return $"{dst} s{s_aluOps[(int)ins.AluOp >> 4]} {src}";
            default:
                return $"{dst} {s_aluOps[(int)ins.AluOp >> 4]} {src}";
        }
    }

    static string FormatJmp(Instruction ins)
    {
        switch (ins.JmpOp)
        {
            case JmpOp.Ja:
                return ins.Class == InstructionClass.Jmp32 ? $"gotol {Target(ins.Imm)}" : $"goto {Target(ins.Offset)}";
            case JmpOp.Exit:
                return "exit";
            case JmpOp.Jcond:
                return $"may_goto {Target(ins.Offset)}";
            case JmpOp.Call:
                if (ins.SourceIsReg) return $"callx r{ins.Dst}";
                return (CallKind)ins.Src switch
                {
                    CallKind.Local => $"call pc{Target(ins.Imm)}",
                    CallKind.Kfunc => $"call kfunc#{ins.Imm}",
                    _ => $"call {HelperNames.Name(ins.Imm) ?? "unknown"}#{ins.Imm}",
                };
        }
        char r = ins.Class == InstructionClass.Jmp ? 'r' : 'w';
        string src = ins.SourceIsReg ? $"{r}{ins.Src}" : Hex(ins.Imm);
        return $"if {r}{ins.Dst} {s_jmpOps[(int)ins.JmpOp >> 4]} {src} goto {Target(ins.Offset)}";
    }

    static string FormatAtomic(Instruction ins)
    {
        bool is64 = ins.MemSize == MemSize.DW;
        int bits = is64 ? 64 : 32;
        char r = is64 ? 'r' : 'w';
        string addr = Address(ins.Dst, ins.Offset);
        string src = $"{r}{ins.Src}";
        var op = (AtomicOp)ins.Imm;
        switch (op)
        {
            case AtomicOp.Add or AtomicOp.Or or AtomicOp.And or AtomicOp.Xor:
                string sym = op switch { AtomicOp.Add => "+=", AtomicOp.Or => "|=", AtomicOp.And => "&=", _ => "^=" };
                return $"lock *(u{bits} *)({addr}) {sym} {src}";
            case AtomicOp.FetchAdd or AtomicOp.FetchOr or AtomicOp.FetchAnd or AtomicOp.FetchXor:
                string name = op switch { AtomicOp.FetchAdd => "add", AtomicOp.FetchOr => "or", AtomicOp.FetchAnd => "and", _ => "xor" };
                return $"{src} = atomic_fetch_{name}((u{bits} *)({addr}), {src})";
            case AtomicOp.Xchg:
                return is64 ? $"{src} = xchg_64({addr}, {src})" : $"{src} = xchg32_32({addr}, {src})";
            case AtomicOp.CmpXchg:
                return is64 ? $"r0 = cmpxchg_64({addr}, r0, {src})" : $"w0 = cmpxchg32_32({addr}, w0, {src})";
            default:
                return $"<invalid atomic 0x{ins.Imm:x}>";
        }
    }

    static string FormatLd(Instruction ins) => ins.MemMode switch
    {
        MemMode.Abs => $"r0 = *(u{Bits(ins.MemSize)} *)skb[{ins.Imm}]",
        MemMode.Ind => $"r0 = *(u{Bits(ins.MemSize)} *)skb[r{ins.Src} + {ins.Imm}]",
        _ => $"<invalid 0x{ins.Opcode:x2}>",
    };

    static string FormatLdImm64(Instruction ins, Instruction next)
    {
        string dst = $"r{ins.Dst}";
        return (Ld64Source)ins.Src switch
        {
            Ld64Source.MapFd => $"{dst} = map[fd:{ins.Imm}] ll",
            Ld64Source.MapValue => $"{dst} = map[fd:{ins.Imm}][0]+{next.Imm} ll",
            Ld64Source.BtfId => $"{dst} = btf_id[{ins.Imm}] ll",
            Ld64Source.Func => $"{dst} = func[pc{Target(ins.Imm)}] ll",
            Ld64Source.MapIdx => $"{dst} = map[idx:{ins.Imm}] ll",
            Ld64Source.MapIdxValue => $"{dst} = map[idx:{ins.Imm}][0]+{next.Imm} ll",
            _ => $"{dst} = 0x{ins.Imm64(next):x} ll",
        };
    }
}
