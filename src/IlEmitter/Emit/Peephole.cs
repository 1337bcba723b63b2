using BpfJit.Frontend;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Exact eBPF-level rewrites the emitter applies to every program (docs/jit.md, "Optimisations"), decided
/// before emission from the slots alone:
/// <list type="bullet">
/// <item><b>Add chains</b>: <c>rd += a; ...; rd += b</c> in one basic block, with nothing in between that
/// reads rd or writes a, becomes <c>rd += (a + b)</c> at the second add. 64-bit adds wrap, so the sum is
/// the same; the two adds are no longer a dependency chain through rd (stack_loop's accumulator).</item>
/// <item><b>Small loops unrolled twice</b>: a loop that is one basic block ending in a backward
/// conditional jump is emitted as two copies of its body, the first followed by the inverted test out
/// of the loop, so a run takes one taken branch per two iterations.</item>
/// </list>
/// </summary>
internal static class Peephole
{
    /// <summary>The longest loop body (in slots) that is unrolled.</summary>
    public const int MaxUnrolledBody = 12;

    /// <summary>Per slot: the earlier add folded into this one, or -1. <paramref name="foldedAway"/> marks the earlier adds.</summary>
    public static int[] FoldAdds(Instruction[] program, bool[] isTarget, bool[] reachable, out bool[] foldedAway)
    {
        int n = program.Length;
        var foldedInto = new int[n];
        Array.Fill(foldedInto, -1);
        foldedAway = new bool[n];
        for (int a = 0; a < n; a++)
        {
            if (!IsAdd64(program[a]) || !reachable[a] || foldedAway[a] || foldedInto[a] >= 0) continue;
            var first = program[a];
            int d = first.Dst;
            if (first.SourceIsReg && first.Src == d) continue;
            for (int b = a + 1; b < n; b++)
            {
                if (isTarget[b] || !reachable[b]) break;
                var ins = program[b];
                if (IsAdd64(ins) && ins.Dst == d)
                {
                    if (!(ins.SourceIsReg && ins.Src == d) && foldedInto[b] < 0)
                    {
                        foldedInto[b] = a;
                        foldedAway[a] = true;
                    }
                    break;
                }
                if (!IsStraightLine(ins) || Reads(ins, d) || Writes(ins, d)) break;
                if (first.SourceIsReg && Writes(ins, first.Src)) break;
                if (ins.IsLdImm64) b++;
            }
        }
        return foldedInto;
    }

    /// <summary>
    /// Single-block loops to unroll: per backward conditional jump slot, its loop head, when the body
    /// (head up to the jump) has no other branch target, no jump, call or exit, and at most
    /// <see cref="MaxUnrolledBody"/> slots.
    /// </summary>
    public static Dictionary<int, int> Loops(Instruction[] program, bool[] isTarget, bool[] reachable)
    {
        var loops = new Dictionary<int, int>();
        for (int j = 0; j < program.Length; j++)
        {
            var ins = program[j];
            if (!ins.IsBranch || ins.IsUnconditionalJump || ins.BranchOffset >= 0 || !reachable[j]) continue;
            int head = j + 1 + ins.BranchOffset;
            if (j - head > MaxUnrolledBody || j + 1 >= program.Length || !reachable[j + 1]) continue;
            bool simple = true;
            for (int k = head; k < j && simple; k++)
            {
                if ((k > head && isTarget[k]) || !reachable[k] || !IsStraightLine(program[k])) simple = false;
                if (program[k].IsLdImm64) k++;
            }
            if (simple && !isTarget[j] && !loops.ContainsValue(head)) loops[j] = head;
        }
        return loops;
    }

    static bool IsAdd64(Instruction ins) => ins.Class == InstructionClass.Alu64 && ins.AluOp == AluOp.Add;

    /// <summary>ALU, loads, stores and constants: no control transfer, no call, no atomic.</summary>
    static bool IsStraightLine(Instruction ins) => ins.Class switch
    {
        InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx or InstructionClass.St => true,
        InstructionClass.Stx => ins.MemMode != MemMode.Atomic,
        InstructionClass.Ld => ins.IsLdImm64,
        _ => false,
    };

    static bool Reads(Instruction ins, int r) => ins.Class switch
    {
        InstructionClass.Alu or InstructionClass.Alu64 => ins.AluOp == AluOp.Mov ? ins.SourceIsReg && ins.Src == r
            : ins.Dst == r || (ins.SourceIsReg && ins.Src == r),
        InstructionClass.Ldx => ins.Src == r,
        InstructionClass.St => ins.Dst == r,
        InstructionClass.Stx => ins.Dst == r || ins.Src == r,
        _ => false,
    };

    static bool Writes(Instruction ins, int r) => ins.Class switch
    {
        InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx => ins.Dst == r,
        InstructionClass.Ld => ins.Dst == r,
        _ => false,
    };
}
