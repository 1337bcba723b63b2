using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>One function frame: registers r0-r10 and the stack (the kernel's <c>bpf_func_state</c>).</summary>
internal sealed class FuncState
{
    public RegState[] Regs = new RegState[BpfAbi.RegisterCount];
    public StackState Stack = new();
    /// <summary>The call instruction that created this frame (-1 for the main program).</summary>
    public int CallSite = -1;
    /// <summary>This frame's index in the state.</summary>
    public int FrameNo;
    /// <summary>The subprogram this frame runs.</summary>
    public int Subprog;
    /// <summary>True for a callback frame (bpf_loop, bpf_for_each_map_elem): its exit goes back to the helper call.</summary>
    public bool InCallback;
    /// <summary>Callback iterations explored from this frame's current bpf_loop call (the kernel's callback_depth).</summary>
    public int CallbackDepth;
    /// <summary>
    /// True for the frame of a bpf_timer callback (the kernel's in_async_callback_fn): verified as a program of its
    /// own, frame 0 of a state with no caller, whose exit must return 0.
    /// </summary>
    public bool InAsyncCallback;

    public FuncState Clone()
    {
        var f = new FuncState { Stack = Stack.Clone(), CallSite = CallSite, FrameNo = FrameNo, Subprog = Subprog, InCallback = InCallback, CallbackDepth = CallbackDepth, InAsyncCallback = InAsyncCallback };
        Array.Copy(Regs, f.Regs, 11);
        return f;
    }
}

/// <summary>An acquired reference: a socket from a sockmap lookup or ring buffer memory.</summary>
internal readonly record struct RefState(int Id, int InsnIdx);

/// <summary>The whole abstract machine state on one path (the kernel's <c>bpf_verifier_state</c>).</summary>
internal sealed class VerifierState
{
    public List<FuncState> Frames = [];
    public List<RefState> Refs = [];
    /// <summary>Instruction to execute next.</summary>
    public int Insn;
    /// <summary>For a pushed branch: the instruction that pushed it (the kernel's "from N to M").</summary>
    public int From = -1;
    /// <summary>The checkpoint this path continues from (for branch counting).</summary>
    public VerifierState? Parent;
    /// <summary>For a stored checkpoint: paths still being explored below it.</summary>
    public int Branches;
    /// <summary>Pruning statistics: how often this checkpoint was compared and did not match.</summary>
    public int Misses;
    /// <summary>Pruning statistics: how often this checkpoint pruned a path.</summary>
    public int Hits;
    /// <summary>The map whose bpf_spin_lock is held, or -1 (the kernel's active lock; one at a time).</summary>
    public int LockMap = -1;
    /// <summary>The id of the map value pointer the held lock was taken through (0 for a direct value address).</summary>
    public int LockId;
    /// <summary>Inside a bpf_rcu_read_lock section (the kernel's active_rcu_lock; 6.18 does not nest them).</summary>
    public bool RcuLock;
    /// <summary>Instructions executed since <see cref="Parent"/> (for a checkpoint: from its parent to it), for precision backtracking.</summary>
    public List<HistEntry> History = [];
    /// <summary>For a checkpoint: every scalar in it and its ancestors is already precise.</summary>
    public bool AllPrecise;
    /// <summary>Callback bodies entered on this path (the kernel's callback_unroll_depth; loop detection compares it).</summary>
    public int CallbackUnrollDepth;
    /// <summary>may_goto fall-throughs taken on this path (the kernel's may_goto_depth): loop detection and convergence compare it.</summary>
    public int MayGotoDepth;

    public FuncState Cur => Frames[^1];
    public int CurFrame => Frames.Count - 1;

    public VerifierState Clone()
    {
        var s = new VerifierState { Insn = Insn, Parent = Parent, Refs = [.. Refs], CallbackUnrollDepth = CallbackUnrollDepth, MayGotoDepth = MayGotoDepth, LockMap = LockMap, LockId = LockId, RcuLock = RcuLock, History = [.. History] };
        foreach (var f in Frames) s.Frames.Add(f.Clone());
        return s;
    }

    /// <summary>Every register, in every frame and every stack spill, for bulk updates (NULL checks, releases).</summary>
    public void ForEachReg(RefAction action)
    {
        foreach (var f in Frames)
        {
            for (int r = 0; r < BpfAbi.RegisterCount; r++) action(ref f.Regs[r]);
            for (int spi = 0; spi < f.Stack.Spilled.Length; spi++)
                if (f.Stack.IsSpilled(spi)) action(ref f.Stack.Spilled[spi]);
        }
    }

    public delegate void RefAction(ref RegState reg);
}
