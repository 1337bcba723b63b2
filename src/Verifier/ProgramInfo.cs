using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// What the verifier knows before executing anything (the kernel's <c>check_subprogs</c> and
/// <c>check_cfg</c>): subprogram boundaries, jump structure, reachability, prune points and the
/// registers live before each instruction (<c>compute_live_registers</c>).
/// </summary>
internal sealed class ProgramInfo
{
    /// <summary>The program (an array: see <see cref="Checker"/>'s copy).</summary>
    public readonly Instruction[] Insns;
    /// <summary>Sorted start instructions of the subprograms; subprogram 0 starts at 0.</summary>
    public readonly List<int> SubprogStarts = [0];
    public readonly bool[] PrunePoint;
    /// <summary>Helper calls that run a callback (bpf_loop, bpf_for_each_map_elem): always checkpointed, pruned by range.</summary>
    public readonly bool[] CallsCallback;
    public readonly bool[] Reachable;
    /// <summary>bpf_iter_num_next calls: always checkpointed; an iterator loop converges there (process_iter_next_call).</summary>
    public readonly bool[] IterNext;
    /// <summary>The kernel functions kfunc call immediates index (null: BpfJit's kfunc ids).</summary>
    readonly IReadOnlyList<string>? _kfuncs;
    /// <summary>Bit r set when register r may be read before it is written, from this instruction on.</summary>
    public readonly ushort[] LiveIn;
    /// <summary>Local call edges, caller subprogram to callee subprogram.</summary>
    public readonly List<(int Caller, int Callee)> CallEdges = [];

    ProgramInfo(IReadOnlyList<Instruction> insns, IReadOnlyList<string>? kfuncs)
    {
        Insns = insns as Instruction[] ?? [.. insns];
        _kfuncs = kfuncs;
        IterNext = new bool[Insns.Length];
        PrunePoint = new bool[Insns.Length];
        CallsCallback = new bool[Insns.Length];
        Reachable = new bool[Insns.Length];
        LiveIn = new ushort[Insns.Length];
    }

    public int SubprogOf(int insn)
    {
        int i = SubprogStarts.BinarySearch(insn);
        return i >= 0 ? i : ~i - 1;
    }

    public int SubprogEnd(int subprog) => subprog + 1 < SubprogStarts.Count ? SubprogStarts[subprog + 1] : Insns.Length;

    /// <summary>Builds the structure, or returns the kernel-worded error and the instruction it concerns.</summary>
    public static ProgramInfo Build(IReadOnlyList<Instruction> insns, HelperTable helpers, out string? error, out int errorInsn,
        IReadOnlyList<string>? kernelFunctions = null)
    {
        var info = new ProgramInfo(insns, kernelFunctions);
        error = info.Check(helpers, out errorInsn);
        return info;
    }

    /// <summary>
    /// Records a subprogram start in the sorted list (the kernel's add_subprog: find it, else insert it in order); false
    /// when it would be one too many. A list, not a SortedSet: SortedSet&lt;int&gt;'s copy-out is framework generic code that
    /// RyuJIT compiles at a process's first program (docs/perf.md, "Cold start").
    /// </summary>
    static bool AddSubprog(List<int> starts, int start)
    {
        int at = starts.BinarySearch(start);
        if (at >= 0) return true;
        if (starts.Count >= BpfAbi.MaxSubprogs) return false;
        starts.Insert(~at, start);
        return true;
    }

    static bool IsSecondSlot(Instruction[] insns, int i) => i > 0 && insns[i - 1].IsLdImm64;

    string? Check(HelperTable helpers, out int at)
    {
        at = 0;
        int n = Insns.Length;
        if (n == 0) return "empty program";
        if (n > BpfAbi.MaxInsns) return $"program too large: {n} insns (max {BpfAbi.MaxInsns})";
        // Decode checks and subprogram discovery.
        var starts = new List<int> { 0 };
        for (int i = 0; i < n; i++)
        {
            var ins = Insns[i];
            at = i;
            string? bad = Decoder.Check(ins);
            if (bad != null) return bad;
            if (ins.IsLdImm64)
            {
                if (i + 1 >= n) return "invalid bpf_ld_imm64 insn";
                var next = Insns[i + 1];
                if (next.Opcode != 0 || next.Dst != 0 || next.Src != 0 || next.Offset != 0) return "invalid bpf_ld_imm64 insn";
                if (ins.Src == (byte)Ld64Source.Func)
                {
                    int t = i + ins.Imm + 1;
                    if (t < 0 || t >= n) return "call to invalid destination";
                    if (!AddSubprog(starts, t)) return "too many subprograms";
                }
                else if (ins.Src is (byte)Ld64Source.BtfId) return "ld_imm64 of a kernel BTF id is not supported";
                i++;
                continue;
            }
            if (ins.Class == InstructionClass.Ld) return "BPF_LD_[ABS|IND] instructions not allowed for this program type";
            if (ins.Opcode == Op.CallX) return "callx is not supported";
            if (ins.IsCall && ins.Src == (byte)CallKind.Local)
            {
                int t = i + ins.Imm + 1;
                if (t < 0 || t >= n) return "call to invalid destination";
                if (!AddSubprog(starts, t)) return "too many subprograms";
            }
        }
        SubprogStarts.Clear();
        SubprogStarts.AddRange(starts);
        // Jumps stay inside their subprogram; the last instruction of each is exit or ja.
        for (int s = 0; s < SubprogStarts.Count; s++)
        {
            int start = SubprogStarts[s], end = SubprogEnd(s);
            for (int i = start; i < end; i++)
            {
                var ins = Insns[i];
                at = i;
                if (ins.IsBranch)
                {
                    int t = i + ins.BranchOffset + 1;
                    if (t < start || t >= end) return $"jump out of range from insn {i} to {t}";
                }
                if (i >= end - 1 - (ins.IsLdImm64 ? 1 : 0) && !(ins.IsExit || ins.IsUnconditionalJump)) return "last insn is not an exit or jmp";
                if (ins.IsLdImm64) i++;
            }
        }
        // Reachability (depth-first, like check_cfg) and prune points.
        var work = new Stack<int>();
        Reachable[0] = true;
        work.Push(0);
        while (work.Count > 0)
        {
            int i = work.Pop();
            foreach (int t in Successors(i, includeCallees: true))
            {
                if (t < 0 || t >= n || Reachable[t]) continue;
                Reachable[t] = true;
                work.Push(t);
            }
        }
        for (int i = 0; i < n; i++)
        {
            if (IsSecondSlot(Insns, i)) continue;
            at = i;
            if (!Reachable[i]) return $"unreachable insn {i}";
        }
        for (int i = 0; i < n; i++)
        {
            at = i;
            var ins = Insns[i];
            if (ins.IsBranch && IsSecondSlot(Insns, i + ins.BranchOffset + 1)) return $"jump into the middle of ldimm64 insn {i + ins.BranchOffset}";
            if (ins.IsCall && ins.Src == (byte)CallKind.Local && IsSecondSlot(Insns, i + ins.Imm + 1)) return $"jump into the middle of ldimm64 insn {i + ins.Imm}";
            if (ins.IsLdImm64) i++;
        }
        for (int i = 0; i < n; i++)
        {
            if (IsSecondSlot(Insns, i)) continue;
            at = i;
            var ins = Insns[i];
            // The kernel's prune points (visit_insn): a jump's target and a conditional jump itself (may_goto
            // included, where the kernel also forces a checkpoint: loops converge on it), and the instruction
            // after every call. Where checkpoints can be changes what pruning proves, so they are the kernel's.
            if (ins.IsBranch)
            {
                PrunePoint[i + ins.BranchOffset + 1] = true;
                if (!ins.IsUnconditionalJump) PrunePoint[i] = true;
            }
            if (ins.IsCall && i + 1 < n) PrunePoint[i + 1] = true;
            if (ins.IsCall && ins.Src == (byte)CallKind.Local)
            {
                PrunePoint[i] = true;
                CallEdges.Add((SubprogOf(i), SubprogOf(i + ins.Imm + 1)));
            }
            // A callback runs on top of the frame that takes its address (the kernel counts bpf_pseudo_func as a call for stack depth).
            if (ins.IsLdImm64 && ins.Src == (byte)Ld64Source.Func)
                CallEdges.Add((SubprogOf(i), SubprogOf(i + ins.Imm + 1)));
            if (IsCallbackCall(ins)) PrunePoint[i] = CallsCallback[i] = true;
            // The kernel forces a checkpoint at each iterator next() call (mark_force_checkpoint).
            if (ins.IsCall && ins.Src == (byte)CallKind.Kfunc && KernelFunctions.Name(ins.Imm, _kfuncs) == "bpf_iter_num_next")
                PrunePoint[i] = IterNext[i] = true;
        }
        ComputeLiveness(helpers);
        return null;
    }

    /// <summary>True for a call of a helper that runs a callback subprogram.</summary>
    public static bool IsCallbackCall(Instruction ins) =>
        ins.IsCall && ins.Src == (byte)CallKind.Helper && ins.Imm is KernelHelpers.LoopId or KernelHelpers.ForEachMapElemId
            or KernelHelpers.UserRingbufDrainId or KernelHelpers.FindVmaId;

    /// <summary>Successors within the instruction stream; local calls continue after the call (and into the callee when asked).</summary>
    public IEnumerable<int> Successors(int i, bool includeCallees)
    {
        var ins = Insns[i];
        if (ins.IsExit) yield break;
        if (ins.IsLdImm64)
        {
            if (includeCallees && ins.Src == (byte)Ld64Source.Func) yield return i + ins.Imm + 1;
            yield return i + 2;
            yield break;
        }
        if (ins.IsCall && ins.Src == (byte)CallKind.Local && includeCallees) yield return i + ins.Imm + 1;
        if (ins.IsBranch)
        {
            yield return i + ins.BranchOffset + 1;
            if (ins.IsUnconditionalJump) yield break;
        }
        if (i + 1 < Insns.Length) yield return i + 1;
    }

    void ComputeLiveness(HelperTable helpers)
    {
        int n = Insns.Length;
        var use = new ushort[n];
        var def = new ushort[n];
        for (int i = 0; i < n; i++)
        {
            if (IsSecondSlot(Insns, i)) continue;
            (use[i], def[i]) = UseDef(Insns[i], helpers, _kfuncs);
        }
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int i = n - 1; i >= 0; i--)
            {
                if (IsSecondSlot(Insns, i) || !Reachable[i]) continue;
                ushort outLive = 0;
                foreach (int t in Successors(i, includeCallees: false)) if (t < n) outLive |= LiveIn[t];
                ushort inLive = (ushort)(use[i] | (outLive & ~def[i]) | (1 << BpfAbi.FramePointer));
                if (inLive != LiveIn[i]) { LiveIn[i] = inLive; changed = true; }
            }
        }
    }

    static ushort Bit(int r) => (ushort)(1 << r);

    static (ushort Use, ushort Def) UseDef(Instruction ins, HelperTable helpers, IReadOnlyList<string>? kfuncs)
    {
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                {
                    ushort u = 0;
                    if (ins.AluOp != AluOp.Mov) u |= Bit(ins.Dst);
                    if (ins.SourceIsReg && ins.AluOp is not (AluOp.Neg or AluOp.End)) u |= Bit(ins.Src);
                    return (u, Bit(ins.Dst));
                }
            case InstructionClass.Ldx: return (Bit(ins.Src), Bit(ins.Dst));
            case InstructionClass.St: return (Bit(ins.Dst), 0);
            case InstructionClass.Stx:
                {
                    ushort u = (ushort)(Bit(ins.Dst) | Bit(ins.Src)), d = 0;
                    if (ins.MemMode == MemMode.Atomic)
                    {
                        if ((AtomicOp)ins.Imm == AtomicOp.CmpXchg) { u |= Bit(0); d = Bit(0); }
                        else if ((ins.Imm & 1) != 0) d = Bit(ins.Src);
                    }
                    return (u, d);
                }
            case InstructionClass.Ld: return (0, Bit(ins.Dst));
            default:
                if (ins.IsExit) return (Bit(0), 0);
                if (ins.IsCall)
                {
                    ushort u = 0;
                    int args = 5;
                    if (ins.Src == (byte)CallKind.Helper && helpers.TryGet(ins.Imm, out var h))
                        args = h.Proto.Args.Count(a => a != ArgType.DontCare);
                    else if (ins.Src == (byte)CallKind.Kfunc && KernelFunctions.Name(ins.Imm, kfuncs) is { } name && KfuncTable.TryGet(name, out var k))
                        args = k.Proto.Args.Length;
                    for (int r = 1; r <= args; r++) u |= Bit(r);
                    return (u, 0b111111);
                }
                if (ins.IsUnconditionalJump || ins.IsMayGoto) return (0, 0);
                return ((ushort)(Bit(ins.Dst) | (ins.SourceIsReg ? Bit(ins.Src) : 0)), 0);
        }
    }
}
