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
    // Internal opcodes: LDX, ST and STX with mode 0 (BPF_IMM), which are not eBPF instructions (Decoder.Validate
    // rejects them), so no program handed to the interpreter holds them. The size bits are kept: W, H, B, DW.
    public const byte LoadW = 0x01, LoadH = 0x09, LoadB = 0x11, LoadDW = 0x19;
    // Sign-extending loads: LDX with mode BPF_ABS (0x20), invalid in LDX.
    public const byte LoadSW = 0x21, LoadSH = 0x29, LoadSB = 0x31;
    public const byte StoreImmW = 0x02, StoreImmH = 0x0a, StoreImmB = 0x12, StoreImmDW = 0x1a;
    public const byte StoreW = 0x03, StoreH = 0x0b, StoreB = 0x13, StoreDW = 0x1b;

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
            0x61 when ins.Src == 10 => LoadW,
            0x69 when ins.Src == 10 => LoadH,
            0x71 when ins.Src == 10 => LoadB,
            0x79 when ins.Src == 10 => LoadDW,
            0x81 when ins.Src == 10 => LoadSW,
            0x89 when ins.Src == 10 => LoadSH,
            0x91 when ins.Src == 10 => LoadSB,
            0x62 when ins.Dst == 10 => StoreImmW,
            0x6a when ins.Dst == 10 => StoreImmH,
            0x72 when ins.Dst == 10 => StoreImmB,
            0x7a when ins.Dst == 10 => StoreImmDW,
            0x63 when ins.Dst == 10 => StoreW,
            0x6b when ins.Dst == 10 => StoreH,
            0x73 when ins.Dst == 10 => StoreB,
            0x7b when ins.Dst == 10 => StoreDW,
            _ => 0,
        };
    }
}
