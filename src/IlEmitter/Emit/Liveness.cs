using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Backward register liveness over the slots a program can reach: which of r0-r10 may still be read
/// after each slot. The emitter drops an ALU result or constant nobody reads and sets in the prologue
/// only the registers some path reads before writing. Conservative where the model is coarse: a
/// bpf-to-bpf call, and <c>exit</c> in a program with such calls, read every register; an atomic
/// reads r0 and its operands and counts as writing nothing.
/// </summary>
internal static class Liveness
{
    /// <summary>Every register, r0-r10.</summary>
    public const ushort All = 0x7ff;

    /// <summary>
    /// Per slot, the registers live after it (bit n = rn). <paramref name="reachable"/> says which slots
    /// are compiled; <paramref name="helperReads"/> gives, per helper call slot, the registers the emitted
    /// call passes (r1-r5 unless specialised).
    /// </summary>
    public static ushort[] LiveOut(Instruction[] program, bool[] reachable, bool hasLocalCalls, Func<int, ushort> helperReads, Func<int, ushort?>? storeUse = null)
    {
        int n = program.Length;
        var use = new ushort[n];
        var def = new ushort[n];
        var next = new int[n];     // fall-through successor or -1
        var jump = new int[n];     // branch target or -1
        for (int i = 0; i < n; i++)
        {
            next[i] = jump[i] = -1;
            if (!reachable[i] || (i > 0 && program[i - 1].IsLdImm64)) continue;
            var ins = program[i];
            (use[i], def[i]) = UseDef(program[i], i, hasLocalCalls, helperReads, storeUse);
            if (ins.IsExit) continue;
            if (ins.IsBranch) jump[i] = i + 1 + ins.BranchOffset;
            if (!ins.IsUnconditionalJump) next[i] = ins.IsLdImm64 ? i + 2 : i + 1;
            if (next[i] >= n || (next[i] >= 0 && !reachable[next[i]])) next[i] = -1;
            if (jump[i] >= n || (jump[i] >= 0 && !reachable[jump[i]])) jump[i] = -1;
        }
        var liveIn = new ushort[n];
        var liveOut = new ushort[n];
        bool changed = true;
        while (changed)
        {
            // Backward order converges in one pass for forward code, one more per loop nesting.
            changed = false;
            for (int i = n - 1; i >= 0; i--)
            {
                if (!reachable[i] || (i > 0 && program[i - 1].IsLdImm64)) continue;
                ushort outSet = 0;
                if (next[i] >= 0) outSet |= liveIn[next[i]];
                if (jump[i] >= 0) outSet |= liveIn[jump[i]];
                ushort inSet = (ushort)(use[i] | (outSet & ~def[i]));
                if (inSet != liveIn[i] || outSet != liveOut[i])
                {
                    liveIn[i] = inSet;
                    liveOut[i] = outSet;
                    changed = true;
                }
            }
        }
        return liveOut;
    }

    /// <summary>The registers live on entry at <paramref name="entry"/>: use ∪ (live-out − def) of that slot.</summary>
    public static ushort LiveIn(Instruction[] program, ushort[] liveOut, int entry, bool hasLocalCalls, Func<int, ushort> helperReads, Func<int, ushort?>? storeUse = null)
    {
        var (use, def) = UseDef(program[entry], entry, hasLocalCalls, helperReads, storeUse);
        return (ushort)(use | (liveOut[entry] & ~def));
    }

    static ushort Bit(int r) => (ushort)(1 << r);

    static (ushort Use, ushort Def) UseDef(Instruction ins, int i, bool hasLocalCalls, Func<int, ushort> helperReads, Func<int, ushort?>? storeUse)
    {
        // A merged (or absorbed) byte store reads what the merged store reads (StoreMerge).
        if (storeUse?.Invoke(i) is { } merged) return (merged, 0);
        ushort srcBit = ins.SourceIsReg ? Bit(ins.Src) : (ushort)0;
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                if (ins.AluOp == AluOp.Mov) return (srcBit, Bit(ins.Dst));
                if (ins.AluOp is AluOp.Neg or AluOp.End) return (Bit(ins.Dst), Bit(ins.Dst));
                return ((ushort)(Bit(ins.Dst) | srcBit), Bit(ins.Dst));
            case InstructionClass.Ldx:
                return (Bit(ins.Src), Bit(ins.Dst));
            case InstructionClass.St:
                return (Bit(ins.Dst), 0);
            case InstructionClass.Stx when ins.MemMode == MemMode.Atomic:
                return ((ushort)(Bit(ins.Dst) | Bit(ins.Src) | Bit(0)), 0);
            case InstructionClass.Stx:
                return ((ushort)(Bit(ins.Dst) | Bit(ins.Src)), 0);
            case InstructionClass.Ld when ins.IsLdImm64:
                return (0, Bit(ins.Dst));
        }
        if (ins.IsExit) return (hasLocalCalls ? All : Bit(0), 0);
        if (ins.Opcode == Op.CallX) return ((ushort)(Bit(ins.Dst) | 0x3e), Bit(0));
        if (ins.IsCall) return ins.Src == (byte)CallKind.Local ? (All, (ushort)0) : (helperReads(i), Bit(0));
        if (ins.IsBranch) return ins.IsUnconditionalJump || ins.IsMayGoto ? ((ushort)0, (ushort)0) : ((ushort)(Bit(ins.Dst) | srcBit), (ushort)0);
        return (All, 0);
    }
}
