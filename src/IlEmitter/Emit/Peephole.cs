using BpfJit.Frontend;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Small loops unrolled (docs/jit.md, "Optimisations"), decided before emission from the slots alone: a
/// loop that is one basic block ending in a backward conditional jump is emitted as several copies of
/// its body, each but the last followed by the inverted test out of the loop, so a run takes one taken
/// branch per copies-many iterations. Exact: the code is only duplicated.
/// </summary>
internal static class Peephole
{
    /// <summary>The longest loop body (in slots) that is unrolled.</summary>
    public const int MaxUnrolledBody = 12;

    /// <summary>How many copies of a loop body of <paramref name="slots"/> slots are emitted: 4 up to 8 slots, else 2.</summary>
    public static int UnrollCopies(int slots) => slots <= 8 ? 4 : 2;

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
            if (!ins.IsBranch || ins.IsUnconditionalJump || ins.IsMayGoto || ins.BranchOffset >= 0 || !reachable[j]) continue;
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

    /// <summary>ALU, loads, stores and constants: no control transfer, no call, no atomic.</summary>
    static bool IsStraightLine(Instruction ins) => ins.Class switch
    {
        InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx or InstructionClass.St => true,
        InstructionClass.Stx => ins.MemMode != MemMode.Atomic,
        InstructionClass.Ld => ins.IsLdImm64,
        _ => false,
    };
}
