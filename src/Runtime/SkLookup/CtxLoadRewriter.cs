using BpfJit.Frontend;

namespace BpfJit.Runtime.SkLookup;

/// <summary>
/// Makes direct loads from the context block match the kernel's ctx-access rewrite bit for bit.
/// Over <see cref="SkLookupLayout"/>, a plain load already gives the kernel's value for every
/// access the verifier accepts except one: a 2-byte load (plain or sign-extending) at
/// <c>family+2</c>, <c>protocol+2</c> or <c>local_port+2</c> (offsets 10, 14, 62), which the kernel
/// answers with the field itself because the narrow load is as wide as the 16-bit kernel field
/// (spec 1.2, 2). This pass finds those loads by tracking which registers and 8-byte stack slots
/// hold the ctx pointer, and moves their offset down by 2. Both engines run the rewritten program.
/// </summary>
public static class CtxLoadRewriter
{
    /// <summary>The offsets whose 2-byte loads read the field at offset-2 instead.</summary>
    public static bool IsQuirkOffset(int offset) =>
        offset is SkLookupLayout.Family + 2 or SkLookupLayout.Protocol + 2 or SkLookupLayout.LocalPort + 2;

    // Abstract state: which registers, and which 8-byte slots of the current frame, surely hold ctx.
    readonly record struct State(ushort Regs, ulong Slots)
    {
        public bool Reg(int r) => (Regs & (1 << r)) != 0;
        public State WithReg(int r, bool ctx) => this with { Regs = (ushort)(ctx ? Regs | (1 << r) : Regs & ~(1 << r)) };
        public State Meet(State o) => new((ushort)(Regs & o.Regs), Slots & o.Slots);
    }

    /// <summary>Returns <paramref name="program"/> with the quirky ctx loads re-targeted (the input is not modified).</summary>
    public static Instruction[] Rewrite(Instruction[] program) =>
        Rewrite(program, (offset, size) => size == MemSize.H && IsQuirkOffset(offset) ? offset - 2 : offset);

    /// <summary>
    /// Returns <paramref name="program"/> with each load through the ctx pointer moved to the offset
    /// <paramref name="retarget"/> gives for its (offset, size): the same pass for any context whose narrow
    /// loads the kernel answers from another offset (SK_REUSEPORT's <c>sk_reuseport_md</c> too).
    /// </summary>
    internal static Instruction[] Rewrite(Instruction[] program, Func<int, MemSize, int> retarget)
    {
        ArgumentNullException.ThrowIfNull(program);
        Instruction[]? copy = null;
        foreach (int i in FindCtxLoads(program))
        {
            int target = retarget(program[i].Offset, program[i].MemSize);
            if (target == program[i].Offset) continue;
            copy ??= (Instruction[])program.Clone();
            copy[i] = copy[i] with { Offset = (short)target };
        }
        return copy ?? program;
    }

    /// <summary>The indexes of 2-byte ctx loads at offsets 10, 14 or 62.</summary>
    public static IReadOnlyList<int> FindQuirkLoads(Instruction[] program) =>
        FindCtxLoads(program).Where(i => program[i].MemSize == MemSize.H && IsQuirkOffset(program[i].Offset)).ToArray();

    /// <summary>The indexes of the loads (plain or sign-extending) whose base register surely holds the ctx pointer.</summary>
    static List<int> FindCtxLoads(Instruction[] program)
    {
        ArgumentNullException.ThrowIfNull(program);
        int n = program.Length;
        var state = new State?[n];
        var work = new Stack<int>();
        void Flow(int at, State s)
        {
            if (at < 0 || at >= n) return;
            var old = state[at];
            var next = old is { } o ? o.Meet(s) : s;
            if (old == next) return;
            state[at] = next;
            work.Push(at);
        }

        if (n > 0) Flow(0, new State(1 << 1, 0));
        while (work.Count > 0)
        {
            int i = work.Pop();
            var s = state[i]!.Value;
            var ins = program[i];
            if (ins.IsLdImm64)
            {
                Flow(i + 2, s.WithReg(ins.Dst, false));
                continue;
            }
            switch (ins.Class)
            {
                case InstructionClass.Alu64 when ins.AluOp == AluOp.Mov && ins.SourceIsReg && ins.Offset == 0:
                    Flow(i + 1, s.WithReg(ins.Dst, s.Reg(ins.Src)));
                    break;
                case InstructionClass.Alu or InstructionClass.Alu64:
                    Flow(i + 1, s.WithReg(ins.Dst, false));
                    break;
                case InstructionClass.Ldx:
                    {
                        bool ctx = ins.Src == 10 && ins.MemSize == MemSize.DW && ins.MemMode == MemMode.Mem
                            && SlotOf(ins.Offset) is int slot && (s.Slots & (1UL << slot)) != 0;
                        Flow(i + 1, s.WithReg(ins.Dst, ctx));
                        break;
                    }
                case InstructionClass.St or InstructionClass.Stx:
                    {
                        var next = s;
                        if (ins.Dst == 10)
                        {
                            next = next with { Slots = next.Slots & ~Touched(ins.Offset, ins.MemSize) };
                            bool spill = ins.Class == InstructionClass.Stx && ins.MemMode == MemMode.Mem && ins.MemSize == MemSize.DW;
                            if (spill && SlotOf(ins.Offset) is int slot && s.Reg(ins.Src)) next = next with { Slots = next.Slots | (1UL << slot) };
                        }
                        if (ins.MemMode == MemMode.Atomic && ((ins.Imm & 1) != 0 || ins.Imm == (int)AtomicOp.Xchg))
                            next = next.WithReg(ins.Src, false);
                        if (ins.MemMode == MemMode.Atomic && ins.Imm == (int)AtomicOp.CmpXchg) next = next.WithReg(0, false);
                        Flow(i + 1, next);
                        break;
                    }
                case InstructionClass.Ld:
                    Flow(i + 1, s.WithReg(0, false));
                    break;
                default:
                    if (ins.IsExit) break;
                    if (ins.IsCall && ins.Src == (byte)CallKind.Local)
                    {
                        // The callee starts a new frame with the caller's r1-r5; the caller resumes with r0-r5 clobbered.
                        Flow(i + 1 + ins.Imm, new State((ushort)(s.Regs & 0x3e), 0));
                        Flow(i + 1, new State((ushort)(s.Regs & ~BpfAbi.CallerSavedMask), s.Slots));
                    }
                    else if (ins.IsCall || ins.Opcode == Op.CallX)
                    {
                        Flow(i + 1, new State((ushort)(s.Regs & ~BpfAbi.CallerSavedMask), s.Slots));
                    }
                    else if (ins.IsBranch)
                    {
                        Flow(i + 1 + ins.BranchOffset, s);
                        if (!ins.IsUnconditionalJump) Flow(i + 1, s);
                    }
                    break;
            }
        }

        var found = new List<int>();
        for (int i = 0; i < n; i++)
        {
            var ins = program[i];
            if (state[i] is not { } s || ins.Class != InstructionClass.Ldx) continue;
            if (ins.MemMode is not (MemMode.Mem or MemMode.MemSx)) continue;
            if (s.Reg(ins.Src)) found.Add(i);
        }
        return found;
    }

    static int? SlotOf(short offset) => offset < 0 && offset >= -BpfAbi.StackSize && (offset & 7) == 0 ? (-offset / 8) - 1 : null;

    static ulong Touched(short offset, MemSize size)
    {
        int bytes = size switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };
        ulong mask = 0;
        for (int b = offset; b < offset + bytes; b++)
        {
            if (b >= 0 || b < -BpfAbi.StackSize) continue;
            mask |= 1UL << ((-b - 1) / 8);
        }
        return mask;
    }
}
