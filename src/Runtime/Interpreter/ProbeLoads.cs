using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// The interpreter's BPF_PROBE_MEM loads: a load the verifier proved reads a kernel object (<see cref="SlotFacts.ProbeMem"/>)
/// is rewritten, in the interpreter's own copy of the program, to an internal opcode that reads through
/// <see cref="KernelProbe"/>: the kernel object's image, or 0. Such a load needs no region check: the probe reads only
/// the images it builds, whatever the address.
/// </summary>
internal static class ProbeLoads
{
    // Internal opcodes: LDX with mode BPF_IND (zero-extending) or the unused mode 0xe0 (sign-extending), neither an
    // eBPF instruction (Decoder.Validate rejects them), so no program handed to the interpreter holds them.
    const int NoMode = ~Op.ModeMask;
    const byte Ind = (byte)MemMode.Ind, SignedMode = 0xe0;
    public const byte LoadW = (Op.LdxW & NoMode) | Ind, LoadH = (Op.LdxH & NoMode) | Ind, LoadB = (Op.LdxB & NoMode) | Ind, LoadDW = (Op.LdxDW & NoMode) | Ind;
    public const byte LoadSW = (Op.LdxSW & NoMode) | SignedMode, LoadSH = (Op.LdxSH & NoMode) | SignedMode, LoadSB = (Op.LdxSB & NoMode) | SignedMode;

    /// <summary><paramref name="program"/>, or a copy with each load <paramref name="facts"/> marks as a probe load rewritten.</summary>
    public static Instruction[] Rewrite(Instruction[] program, ProgramFacts? facts)
    {
        if (facts == null || facts.Count != program.Length) return program;
        Instruction[]? copy = null;
        for (int i = 0; i < program.Length; i++)
        {
            var ins = program[i];
            if (!facts[i].ProbeMem || ins.Class != InstructionClass.Ldx || ins.MemMode is not (MemMode.Mem or MemMode.MemSx)) continue;
            byte probe = ins.Opcode switch
            {
                Op.LdxW => LoadW, Op.LdxH => LoadH, Op.LdxB => LoadB, Op.LdxDW => LoadDW,
                Op.LdxSW => LoadSW, Op.LdxSH => LoadSH, Op.LdxSB => LoadSB,
                _ => 0,
            };
            if (probe == 0) continue;
            copy ??= (Instruction[])program.Clone();
            copy[i] = ins with { Opcode = probe };
        }
        return copy ?? program;
    }
}
