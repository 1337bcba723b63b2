using System.Globalization;

namespace BpfJit.Frontend;

/// <summary>
/// Assembles the bpf_conformance <c>-- asm</c> syntax (also uBPF's): <c>mov32 %r0, 0</c>,
/// <c>ldxh %r3, [%r1+12]</c>, <c>jne %r1, 0, label</c>, <c>lock fetch add [%r10-8], %r1</c>,
/// <c>call local func1</c>, <c>call %r2</c>. Labels are <c>name:</c>; <c>#</c> starts a comment.
/// </summary>
public static class Assembler
{
    static readonly Dictionary<string, AluOp> s_alu = new()
    {
        ["add"] = AluOp.Add, ["sub"] = AluOp.Sub, ["mul"] = AluOp.Mul, ["div"] = AluOp.Div, ["or"] = AluOp.Or,
        ["and"] = AluOp.And, ["lsh"] = AluOp.Lsh, ["rsh"] = AluOp.Rsh, ["neg"] = AluOp.Neg, ["mod"] = AluOp.Mod,
        ["xor"] = AluOp.Xor, ["mov"] = AluOp.Mov, ["arsh"] = AluOp.Arsh, ["sdiv"] = AluOp.Div, ["smod"] = AluOp.Mod,
    };

    static readonly Dictionary<string, JmpOp> s_jmp = new()
    {
        ["jeq"] = JmpOp.Jeq, ["jgt"] = JmpOp.Jgt, ["jge"] = JmpOp.Jge, ["jset"] = JmpOp.Jset, ["jne"] = JmpOp.Jne,
        ["jsgt"] = JmpOp.Jsgt, ["jsge"] = JmpOp.Jsge, ["jlt"] = JmpOp.Jlt, ["jle"] = JmpOp.Jle, ["jslt"] = JmpOp.Jslt,
        ["jsle"] = JmpOp.Jsle,
    };

    static readonly Dictionary<string, MemSize> s_sizes = new()
    {
        ["b"] = MemSize.B, ["h"] = MemSize.H, ["w"] = MemSize.W, ["dw"] = MemSize.DW,
    };

    const string ExitLabel = " exit";

    sealed record Line(int Number, string Mnemonic, string[] Operands, int Slot);

    /// <summary>Assembles source text into instruction slots.</summary>
    public static Instruction[] Assemble(string source)
    {
        var lines = new List<Line>();
        var labels = new Dictionary<string, int>(StringComparer.Ordinal);
        int slot = 0, number = 0;
        foreach (var raw in source.Split('\n'))
        {
            number++;
            string text = raw;
            int hash = text.IndexOf('#');
            if (hash >= 0) text = text[..hash];
            text = text.Trim();
            while (text.Length > 0)
            {
                int colon = text.IndexOf(':');
                if (colon <= 0 || text[..colon].Any(c => !(char.IsLetterOrDigit(c) || c == '_' || c == '.'))) break;
                string label = text[..colon];
                if (!labels.TryAdd(label, slot)) throw new BpfAssemblerException(number, $"duplicate label '{label}'");
                text = text[(colon + 1)..].Trim();
            }
            if (text.Length == 0) continue;
            int space = text.IndexOfAny([' ', '\t']);
            string mnemonic = (space < 0 ? text : text[..space]).ToLowerInvariant();
            string rest = space < 0 ? "" : text[(space + 1)..].Trim();
            string[] operands = rest.Length == 0 ? [] : rest.Split(',').Select(s => s.Trim()).ToArray();
            lines.Add(new Line(number, mnemonic, operands, slot));
            slot += mnemonic == "lddw" ? 2 : 1;
        }

        labels.TryAdd(ExitLabel, Math.Max(0, slot - 1));
        var slots = new List<Instruction>(slot);
        foreach (var line in lines)
        {
            try
            {
                Emit(line, labels, slots);
            }
            catch (FormatException e)
            {
                throw new BpfAssemblerException(line.Number, e.Message);
            }
        }
        return slots.ToArray();
    }

    static void Emit(Line line, Dictionary<string, int> labels, List<Instruction> slots)
    {
        string m = line.Mnemonic;
        string[] ops = line.Operands;

        void Need(int n)
        {
            if (ops.Length != n) throw new FormatException($"'{m}' takes {n} operand(s), got {ops.Length}");
        }

        void Add(byte opcode, int dst = 0, int src = 0, int offset = 0, int imm = 0)
        {
            if (offset is < short.MinValue or > short.MaxValue) throw new FormatException($"offset {offset} out of 16-bit range");
            slots.Add(new Instruction(opcode, (byte)dst, (byte)src, (short)offset, imm));
        }

        int Target(string operand)
        {
            if (labels.TryGetValue(operand, out int target)) return target - (line.Slot + 1);
            // The suite's assembler lets a jump name "exit" without such a label: the program's last instruction.
            if (operand == "exit") return labels[ExitLabel] - (line.Slot + 1);
            if (operand.Length > 0 && (operand[0] is '+' or '-' || char.IsDigit(operand[0])))
            {
                long offset = ParseImm(operand);
                return offset is >= int.MinValue and <= int.MaxValue ? (int)offset : throw new FormatException($"jump offset out of range: '{operand}'");
            }
            throw new FormatException($"unknown label '{operand}'");
        }

        switch (m)
        {
            case "exit":
                Need(0);
                Add(Op.Exit);
                return;
            case "ja" or "ja32":
                Need(1);
                if (m == "ja") Add(Op.Ja, offset: Target(ops[0]));
                else Add(Op.Ja32, imm: Target(ops[0]));
                return;
            case "may_goto":
                Need(1);
                Add(Op.MayGoto, offset: Target(ops[0]));
                return;
            case "call":
                if (ops.Length == 1 && ops[0].StartsWith("local ", StringComparison.Ordinal))
                {
                    Add(Op.Call, src: (int)CallKind.Local, imm: Target(ops[0][6..].Trim()));
                }
                else if (ops.Length == 1 && ops[0].StartsWith('%'))
                {
                    Add(Op.CallX, dst: Reg(ops[0]));
                }
                else
                {
                    Need(1);
                    Add(Op.Call, imm: Imm32(ops[0]));
                }
                return;
            case "lddw":
                {
                    Need(2);
                    ulong value = (ulong)ParseImm(ops[1]);
                    Add(Op.LdImm64, dst: Reg(ops[0]), imm: (int)(uint)value);
                    Add(0, imm: (int)(uint)(value >> 32));
                    return;
                }
            case "lock":
                EmitAtomic(ops, Add);
                return;
        }

        // Byte swaps: le16/be32/bswap64 (swap16 is an alias of bswap16).
        foreach (var (prefix, opcode) in new[] { ("le", Op.Le), ("be", Op.Be), ("bswap", Op.Bswap), ("swap", Op.Bswap) })
        {
            if (m.StartsWith(prefix, StringComparison.Ordinal) && m[prefix.Length..] is "16" or "32" or "64")
            {
                Need(1);
                Add(opcode, dst: Reg(ops[0]), imm: int.Parse(m[prefix.Length..], CultureInfo.InvariantCulture));
                return;
            }
        }

        // Sign-extending moves: movsx832, movsx1632, movsx864, movsx1664, movsx3264.
        if (m.StartsWith("movsx", StringComparison.Ordinal))
        {
            Need(2);
            (int from, bool is64) = m[5..] switch
            {
                "832" => (8, false), "1632" => (16, false), "864" => (8, true), "1664" => (16, true), "3264" => (32, true),
                _ => throw new FormatException($"unknown mnemonic '{m}'"),
            };
            byte opcode = (byte)((byte)AluOp.Mov | Op.SourceX | (byte)(is64 ? InstructionClass.Alu64 : InstructionClass.Alu));
            Add(opcode, dst: Reg(ops[0]), src: Reg(ops[1]), offset: from);
            return;
        }

        // Loads and stores.
        if (m.StartsWith("ldx", StringComparison.Ordinal))
        {
            Need(2);
            bool signed = m.StartsWith("ldxs", StringComparison.Ordinal) && s_sizes.ContainsKey(m[4..]);
            var size = Size(m[(signed ? 4 : 3)..], m);
            var (reg, off) = Mem(ops[1]);
            byte mode = (byte)(signed ? MemMode.MemSx : MemMode.Mem);
            Add((byte)(mode | (byte)size | (byte)InstructionClass.Ldx), dst: Reg(ops[0]), src: reg, offset: off);
            return;
        }
        if (m.StartsWith("stx", StringComparison.Ordinal))
        {
            Need(2);
            var size = Size(m[3..], m);
            var (reg, off) = Mem(ops[0]);
            Add((byte)((byte)MemMode.Mem | (byte)size | (byte)InstructionClass.Stx), dst: reg, src: Reg(ops[1]), offset: off);
            return;
        }
        if (m.StartsWith("st", StringComparison.Ordinal) && s_sizes.ContainsKey(m[2..]))
        {
            Need(2);
            var size = Size(m[2..], m);
            var (reg, off) = Mem(ops[0]);
            Add((byte)((byte)MemMode.Mem | (byte)size | (byte)InstructionClass.St), dst: reg, offset: off, imm: Imm32(ops[1]));
            return;
        }

        // ALU and conditional jumps, with an optional 32/64 width suffix.
        string baseName = m;
        bool narrow = false;
        if (m.EndsWith("32", StringComparison.Ordinal)) { baseName = m[..^2]; narrow = true; }
        else if (m.EndsWith("64", StringComparison.Ordinal)) baseName = m[..^2];

        if (s_alu.TryGetValue(baseName, out var aluOp))
        {
            byte cls = (byte)(narrow ? InstructionClass.Alu : InstructionClass.Alu64);
            int offset = baseName is "sdiv" or "smod" ? 1 : 0;
            if (aluOp == AluOp.Neg)
            {
                Need(1);
                Add((byte)((byte)aluOp | cls), dst: Reg(ops[0]));
                return;
            }
            Need(2);
            if (ops[1].StartsWith('%')) Add((byte)((byte)aluOp | Op.SourceX | cls), dst: Reg(ops[0]), src: Reg(ops[1]), offset: offset);
            else Add((byte)((byte)aluOp | cls), dst: Reg(ops[0]), offset: offset, imm: Imm32(ops[1]));
            return;
        }
        if (s_jmp.TryGetValue(baseName, out var jmpOp))
        {
            Need(3);
            byte cls = (byte)(narrow ? InstructionClass.Jmp32 : InstructionClass.Jmp);
            int target = Target(ops[2]);
            if (ops[1].StartsWith('%')) Add((byte)((byte)jmpOp | Op.SourceX | cls), dst: Reg(ops[0]), src: Reg(ops[1]), offset: target);
            else Add((byte)((byte)jmpOp | cls), dst: Reg(ops[0]), offset: target, imm: Imm32(ops[1]));
            return;
        }
        throw new FormatException($"unknown mnemonic '{m}'");
    }

    static void EmitAtomic(string[] ops, Action<byte, int, int, int, int> add)
    {
        // Operands arrive as ["[fetch] op[32] [%rD+off]", "%rS"] because the mnemonic is "lock".
        if (ops.Length != 2) throw new FormatException("'lock' takes an operation, a memory operand and a register");
        var words = ops[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        bool fetch = words.Length > 0 && words[0] == "fetch";
        if (fetch) words = words[1..];
        if (words.Length != 2) throw new FormatException($"malformed atomic operation '{ops[0]}'");
        string name = words[0];
        bool is32 = name.EndsWith("32", StringComparison.Ordinal);
        if (is32) name = name[..^2];
        AtomicOp op = name switch
        {
            "add" => AtomicOp.Add, "or" => AtomicOp.Or, "and" => AtomicOp.And, "xor" => AtomicOp.Xor,
            "xchg" => AtomicOp.Xchg, "cmpxchg" => AtomicOp.CmpXchg,
            _ => throw new FormatException($"unknown atomic operation '{name}'"),
        };
        if (fetch)
        {
            if (op is AtomicOp.Xchg or AtomicOp.CmpXchg) throw new FormatException($"'fetch' does not apply to {name}");
            op = (AtomicOp)((int)op | 1);
        }
        var (reg, off) = Mem(words[1]);
        byte opcode = (byte)((byte)MemMode.Atomic | (byte)(is32 ? MemSize.W : MemSize.DW) | (byte)InstructionClass.Stx);
        add(opcode, reg, Reg(ops[1]), off, (int)op);
    }

    static MemSize Size(string suffix, string mnemonic) =>
        s_sizes.TryGetValue(suffix, out var size) ? size : throw new FormatException($"unknown mnemonic '{mnemonic}'");

    static int Reg(string operand)
    {
        if (operand.StartsWith("%r", StringComparison.Ordinal) &&
            int.TryParse(operand.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int r) && r <= BpfAbi.MaxRegister)
            return r;
        throw new FormatException($"invalid register '{operand}'");
    }

    static (int Reg, int Offset) Mem(string operand)
    {
        if (!(operand.StartsWith('[') && operand.EndsWith(']'))) throw new FormatException($"invalid memory operand '{operand}'");
        string inner = operand[1..^1].Trim();
        int sign = inner.IndexOfAny(['+', '-']);
        if (sign < 0) return (Reg(inner), 0);
        long off = ParseImm(inner[(sign + 1)..].Trim());
        if (inner[sign] == '-') off = -off;
        if (off is < short.MinValue or > short.MaxValue) throw new FormatException($"offset out of range in '{operand}'");
        return (Reg(inner[..sign].Trim()), (int)off);
    }

    static int Imm32(string operand)
    {
        long v = ParseImm(operand);
        if (v is < int.MinValue or > uint.MaxValue) throw new FormatException($"immediate out of 32-bit range: '{operand}'");
        return (int)v;
    }

    /// <summary>Parses a decimal or 0x-hex immediate, optionally signed; hex may use all 64 bits.</summary>
    public static long ParseImm(string text)
    {
        string t = text.Trim();
        bool negative = false;
        if (t.StartsWith('-')) { negative = true; t = t[1..]; }
        else if (t.StartsWith('+')) t = t[1..];
        ulong magnitude;
        bool ok = t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out magnitude)
            : ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out magnitude);
        if (!ok) throw new FormatException($"invalid immediate '{text}'");
        return negative ? -(long)magnitude : (long)magnitude;
    }
}
