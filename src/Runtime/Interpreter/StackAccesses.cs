using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// The interpreter's per-program pre-pass over stack accesses. A load or store through r10 at a constant offset
/// inside the current frame, <c>[r10 - 512, r10)</c>, is safe by construction when the program never writes r10:
/// the interpreter then keeps r10 at <c>stack + (depth + 1) × 512</c> itself (a local call adds a frame, exit
/// removes it), so the access lies in the frame in use, which was zeroed when it was entered. Such an access is
/// rewritten, in the interpreter's own copy of the program, to an internal opcode the dispatch loop runs without a
/// region check. Any other access keeps its check; so does every access of a program that writes r10 anywhere,
/// reachable or not (an unverified program may move its frame pointer).
/// </summary>
internal static class StackAccesses
{
    // Internal opcodes: the table's LDX, ST and STX with mode 0 (BPF_IMM), which are not eBPF instructions
    // (Decoder.Validate rejects them), so no program handed to the interpreter holds them. The size bits are kept.
    const int NoMode = ~Op.ModeMask;
    public const byte LoadW = Op.LdxW & NoMode, LoadH = Op.LdxH & NoMode, LoadB = Op.LdxB & NoMode, LoadDW = Op.LdxDW & NoMode;
    // Sign-extending loads: LDX with mode BPF_ABS, invalid in LDX.
    const byte Abs = (byte)MemMode.Abs;
    public const byte LoadSW = (Op.LdxSW & NoMode) | Abs, LoadSH = (Op.LdxSH & NoMode) | Abs, LoadSB = (Op.LdxSB & NoMode) | Abs;
    public const byte StoreImmW = Op.StW & NoMode, StoreImmH = Op.StH & NoMode, StoreImmB = Op.StB & NoMode, StoreImmDW = Op.StDW & NoMode;
    public const byte StoreW = Op.StxW & NoMode, StoreH = Op.StxH & NoMode, StoreB = Op.StxB & NoMode, StoreDW = Op.StxDW & NoMode;

    /// <summary>
    /// The program to run: <paramref name="program"/> itself when no access can be proven, else a copy with each
    /// proven stack access rewritten to its unchecked internal opcode. <paramref name="proven"/> counts them.
    /// </summary>
    public static Instruction[] Rewrite(Instruction[] program, out int proven)
    {
        proven = 0;
        if (WritesR10(program)) return program;
        Instruction[]? copy = null;
        for (int i = 0; i < program.Length; i++)
        {
            var ins = program[i];
            if (ins.IsLdImm64) { i++; continue; }
            byte fast = Unchecked(ins);
            if (fast == 0) continue;
            copy ??= (Instruction[])program.Clone();
            copy[i] = ins with { Opcode = fast };
            proven++;
        }
        return copy ?? program;
    }

    /// <summary>True when some slot may write r10: an ALU, load or ld_imm64 naming it as destination, or an atomic naming it as source (a fetch writes it back).</summary>
    static bool WritesR10(Instruction[] program)
    {
        for (int i = 0; i < program.Length; i++)
        {
            var ins = program[i];
            bool writes = ins.Class switch
            {
                InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx or InstructionClass.Ld => ins.Dst == 10,
                InstructionClass.Stx => ins.MemMode == MemMode.Atomic && ins.Src == 10,
                _ => false,
            };
            if (writes) return true;
            if (ins.IsLdImm64) i++;
        }
        return false;
    }

    /// <summary>The unchecked opcode of a constant-offset access inside r10's frame, else 0.</summary>
    static byte Unchecked(Instruction ins)
    {
        int size = ins.MemSize switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };
        bool inFrame = ins.Offset >= -Interpreter.StackSize && ins.Offset <= -size;
        if (!inFrame) return 0;
        return ins.Opcode switch
        {
            Op.LdxW when ins.Src == 10 => LoadW,
            Op.LdxH when ins.Src == 10 => LoadH,
            Op.LdxB when ins.Src == 10 => LoadB,
            Op.LdxDW when ins.Src == 10 => LoadDW,
            Op.LdxSW when ins.Src == 10 => LoadSW,
            Op.LdxSH when ins.Src == 10 => LoadSH,
            Op.LdxSB when ins.Src == 10 => LoadSB,
            Op.StW when ins.Dst == 10 => StoreImmW,
            Op.StH when ins.Dst == 10 => StoreImmH,
            Op.StB when ins.Dst == 10 => StoreImmB,
            Op.StDW when ins.Dst == 10 => StoreImmDW,
            Op.StxW when ins.Dst == 10 => StoreW,
            Op.StxH when ins.Dst == 10 => StoreH,
            Op.StxB when ins.Dst == 10 => StoreB,
            Op.StxDW when ins.Dst == 10 => StoreDW,
            _ => 0,
        };
    }
}
