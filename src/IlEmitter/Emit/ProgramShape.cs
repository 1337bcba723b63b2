using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// What the emitter must know about a whole program before it emits the first instruction: which
/// slots are branch targets and call return sites (labels), whether the stack is used at all,
/// whether there are bpf-to-bpf calls, and how many 512-byte frames they can need. With verifier
/// facts it also records what they let the emitter leave out or specialise: unreachable slots, the
/// frame size, each helper call's map (<see cref="MapCalls"/>), and register liveness.
/// </summary>
internal sealed class ProgramShape
{
    /// <summary>Bytes of one saved frame: r6-r9 (0-31), the return-site number (32) and the caller's may_goto budget (36).</summary>
    public const int SavedFrameBytes = 40;

    ProgramShape(Instruction[] program, int entry, ProgramFacts? facts)
    {
        Program = program;
        Entry = entry;
        Facts = facts;
        IsTarget = new bool[program.Length];
        ReturnSiteOf = new int[program.Length];
        Reachable = new bool[program.Length];
        MapCalls = new MapCall[program.Length];
        ClosureSlot = new int[program.Length];
        LiveOut = new ushort[program.Length];
        // One loop, not Array.Fill: Fill<int> and Fill<ushort> are framework generics no ReadyToRun image holds,
        // compiled by the JIT in every process's first compile (docs/perf.md, "Cold start").
        for (int i = 0; i < program.Length; i++)
        {
            Reachable[i] = facts == null || facts[i].Reachable;
            ReturnSiteOf[i] = -1;
            ClosureSlot[i] = -1;
            LiveOut[i] = Liveness.All;
        }
    }

    /// <summary>What the verifier proved about the program, or null for a program compiled without facts.</summary>
    public ProgramFacts? Facts { get; }

    /// <summary>
    /// The facts the default runtime guards read (<see cref="CheckedMemory"/>: which accesses have a variable offset):
    /// <see cref="Facts"/>, or for a callback compiled without them (bpf_loop, bpf_for_each_map_elem: nothing is
    /// specialised from the facts there) the facts of the program it belongs to, whose slots it shares.
    /// </summary>
    public ProgramFacts? GuardFacts { get; private set; }

    /// <summary>Per slot: false when the verifier proved no path reaches it (it is not emitted).</summary>
    public bool[] Reachable { get; }

    /// <summary>Per slot: how a <c>bpf_map_lookup_elem</c> there is specialised to its known map.</summary>
    public MapCall[] MapCalls { get; }

    /// <summary>Per slot: for <see cref="MapCall.Closure"/>, the index of the closure field holding the map.</summary>
    public int[] ClosureSlot { get; }

    /// <summary>The maps specialised calls reach through the closure, by field index (<see cref="JitClosure.MaxMaps"/> at most).</summary>
    public List<BpfMap> ClosureMaps { get; } = [];

    /// <summary>Loops emitted unrolled (<see cref="Peephole.UnrollCopies"/>): loop head slot → the backward conditional jump closing it.</summary>
    public Dictionary<int, int> UnrolledLoops { get; } = [];

    /// <summary>Per slot: the registers some later instruction may read (bit n = rn).</summary>
    public ushort[] LiveOut { get; }

    /// <summary>The registers some path reads before writing them: only these are set in the prologue.</summary>
    public ushort LiveAtEntry { get; private set; } = Liveness.All;

    /// <summary>
    /// Bytes of one stack frame: 512, or with facts and no local calls the verifier's stack depth rounded
    /// up to 8 (r10 is then that far into the block).
    /// </summary>
    public int FrameSize { get; private set; } = BpfAbi.StackSize;

    /// <summary>True when the stack starts zeroed: the option asks for it and no verifier proved it is never read before written.</summary>
    public bool ZeroesStack(JitOptions options) => options.ZeroStack && (Facts == null || Facts.MayReadUninitStack);

    /// <summary>The registers the emitted helper call at <paramref name="slot"/> passes.</summary>
    public ushort HelperReads(int slot, Helper? helper)
    {
        if (MapCalls[slot] != MapCall.None) return 1 << 2;
        // A variadic helper (bpf_trace_printk) reads r3-r5 too, whatever its prototype types.
        if (Facts != null && helper is { } h && !ReferenceEquals(h.Proto, HelperProto.Unknown) && !h.Proto.Variadic) return ArgMask(h.Proto.Args.Length);
        return ArgMask(5);
    }

    /// <summary>r1..r<paramref name="count"/>.</summary>
    static ushort ArgMask(int count) => (ushort)(((1 << count) - 1) << 1);

    /// <summary>The slots.</summary>
    public Instruction[] Program { get; }

    /// <summary>
    /// Where execution starts: 0 for a program; a callback subprogram's first slot for the method a
    /// BPF_PSEUDO_FUNC handle runs (it takes r1-r5 as arguments).
    /// </summary>
    public int Entry { get; }

    /// <summary>True for a callback method (entry other than slot 0, five register arguments).</summary>
    public bool IsCallback => Entry != 0;

    /// <summary>Per slot: true when some jump or local call lands there.</summary>
    public bool[] IsTarget { get; }

    /// <summary>Per slot: its return-site number when it follows a local call, else -1.</summary>
    public int[] ReturnSiteOf { get; }

    /// <summary>The slots that follow local calls, by return-site number.</summary>
    public List<int> ReturnSites { get; } = [];

    /// <summary>Per slot that carries one: a group of byte stores merged into one wider store there (<see cref="StoreMerge"/>).</summary>
    public Dictionary<int, StoreMerge.Group> MergedStores { get; private set; } = [];

    /// <summary>Byte stores absorbed into a merged store at an earlier slot (the value): not emitted.</summary>
    public Dictionary<int, int> AbsorbedStores { get; private set; } = [];

    /// <summary>
    /// The registers slot <paramref name="slot"/> reads when store merging changed it: an absorbed store reads
    /// none, a merged store r10 and the register holding the whole value; null for any other slot.
    /// </summary>
    public ushort? StoreUse(int slot) =>
        AbsorbedStores.ContainsKey(slot) ? (ushort)0
        : MergedStores.TryGetValue(slot, out var g) ? (ushort)(1 << 10 | 1 << g.Reg)
        : null;

    /// <summary>True when some instruction reads r10: only then does the program get a stack.</summary>
    public bool UsesStack { get; private set; }

    /// <summary>
    /// The frame offsets of the stack slots held in IL locals instead of a stack block (<see cref="StackSlots"/>;
    /// <see cref="UsesStack"/> is then false), or null.
    /// </summary>
    public int[]? LocalSlots { get; private set; }

    /// <summary>True when a reachable may_goto needs the per-frame loop budget.</summary>
    public bool HasMayGoto { get; private set; }

    /// <summary>True when the program makes bpf-to-bpf calls.</summary>
    public bool HasLocalCalls => ReturnSites.Count > 0;

    /// <summary>Frames the code can reach: 1 without local calls, the static call depth when it is bounded, else <see cref="BpfAbi.MaxCallFrames"/>.</summary>
    public int Frames { get; private set; } = 1;

    /// <summary>True when the call depth is not statically within <see cref="BpfAbi.MaxCallFrames"/>: each local call checks it.</summary>
    public bool NeedsDepthCheck { get; private set; }

    /// <summary>Bytes of eBPF stack: <see cref="FrameSize"/> per frame when the program uses the stack, else none.</summary>
    public int StackBytes => UsesStack ? Frames * FrameSize : 0;

    /// <summary>Where the saved-frame records start in the stack block (after the stacks).</summary>
    public int SavedAreaOffset => StackBytes;

    /// <summary>Size of the one stack block: the stacks, then one saved-frame record per frame.</summary>
    public int BlockBytes => StackBytes + (HasLocalCalls ? Frames * SavedFrameBytes : 0);

    /// <summary>
    /// Analyses a program that <see cref="ProgramChecks.CheckRunnable"/> accepted, entered at slot
    /// <paramref name="entry"/>, with the helpers its calls resolved to and, for a verified program, its facts
    /// (<paramref name="guardFacts"/>: facts only the runtime guards read, for a callback compiled without specialisation).
    /// </summary>
    public static ProgramShape Analyse(Instruction[] program, int entry = 0, Helper?[]? helpers = null, ProgramFacts? facts = null, bool optimize = true,
        bool checkedMode = false, ProgramFacts? guardFacts = null)
    {
        var shape = new ProgramShape(program, entry, facts);
        shape.GuardFacts = facts ?? guardFacts;
        if (entry != 0) shape.IsTarget[entry] = true;
        var callTargets = new SortedSet<int>();
        for (int i = 0; i < program.Length; i++)
        {
            var ins = program[i];
            if (ReadsR10(ins) && shape.Reachable[i]) shape.UsesStack = true;
            if (ins.IsMayGoto && shape.Reachable[i]) shape.HasMayGoto = true;
            if (ins.IsBranch) shape.IsTarget[i + 1 + ins.BranchOffset] = true;
            if (ins.IsCall && ins.Src == (byte)CallKind.Local)
            {
                int target = i + 1 + ins.Imm;
                shape.IsTarget[target] = true;
                shape.IsTarget[i + 1] = true;
                callTargets.Add(target);
                shape.ReturnSiteOf[i + 1] = shape.ReturnSites.Count;
                shape.ReturnSites.Add(i + 1);
            }
            if (ins.IsLdImm64) i++;
        }
        if (shape.HasLocalCalls)
        {
            int depth = CallDepth(program, callTargets, entry);
            shape.NeedsDepthCheck = depth < 0 || depth > BpfAbi.MaxCallFrames;
            shape.Frames = shape.NeedsDepthCheck ? BpfAbi.MaxCallFrames : depth;
        }
        if (optimize)
        {
            foreach (var (jump, head) in Peephole.Loops(program, shape.IsTarget, shape.Reachable))
            {
                shape.UnrolledLoops[head] = jump;
                shape.IsTarget[jump + 1] = true;   // the first copy's exit test jumps here
            }
        }
        if (facts != null)
        {
            if (!shape.HasLocalCalls && facts.StackDepths.Count > 0)
                shape.FrameSize = Math.Clamp((facts.StackDepths[0] + 7) & ~7, 8, BpfAbi.StackSize);
            if (helpers != null) shape.PlanMapCalls(helpers);
        }
        if (optimize)
        {
            // Checked mode checks each access as the program wrote it: no merged stores there.
            if (!checkedMode) (shape.MergedStores, shape.AbsorbedStores) = StoreMerge.Find(program, shape.Reachable, shape.IsTarget);
            if (!checkedMode && shape.UsesStack && !shape.HasLocalCalls && !shape.IsCallback
                && StackSlots.Find(program, shape.Reachable, shape.FrameSize, shape.MergedStores.Values) is { } slots)
            {
                // The stack never escapes its constant-offset loads and stores: its slots become locals, no block.
                shape.LocalSlots = slots;
                shape.UsesStack = false;
            }
            var reads = (int slot) => shape.HelperReads(slot, helpers?[slot]);
            var liveOut = Liveness.LiveOut(program, shape.Reachable, shape.HasLocalCalls, reads, shape.StoreUse);
            liveOut.CopyTo(shape.LiveOut, 0);
            shape.LiveAtEntry = Liveness.LiveIn(program, liveOut, entry, shape.HasLocalCalls, reads, shape.StoreUse);
        }
        return shape;
    }

    /// <summary>Decides, for each reachable bpf_map_lookup_elem whose map the verifier pinned, how to specialise it.</summary>
    void PlanMapCalls(Helper?[] helpers)
    {
        for (int i = 0; i < Program.Length; i++)
        {
            if (!Reachable[i] || Facts![i].Map is not { } map || helpers[i] is not { } h || h.Method != MapCallEmitter.GenericLookup) continue;
            MapCall kind = map switch
            {
                ArrayMap => MapCall.ArrayInline,
                PerCpuArrayMap => MapCall.PerCpuArrayInline,
                HashMap or LpmTrieMap or SockMap or SockHash => MapCall.Closure,
                _ => MapCall.None,
            };
            if (kind == MapCall.Closure)
            {
                int field = ClosureMaps.IndexOf(map);
                if (field < 0 && ClosureMaps.Count < JitClosure.MaxMaps)
                {
                    field = ClosureMaps.Count;
                    ClosureMaps.Add(map);
                }
                if (field < 0) continue;
                ClosureSlot[i] = field;
            }
            MapCalls[i] = kind;
        }
    }

    /// <summary>True when <paramref name="ins"/> reads register 10 (the only way to reach the stack).</summary>
    internal static bool ReadsR10(Instruction ins)
    {
        const int fp = 10;
        switch (ins.Class)
        {
            case InstructionClass.Ld:
                return false;
            case InstructionClass.Ldx:
                return ins.Src == fp;
            case InstructionClass.St:
                return ins.Dst == fp;
            case InstructionClass.Stx:
                return ins.Dst == fp || ins.Src == fp;
            case InstructionClass.Alu or InstructionClass.Alu64:
                if (ins.AluOp == AluOp.Mov) return ins.SourceIsReg && ins.Src == fp;
                return ins.Dst == fp || (ins.SourceIsReg && ins.Src == fp);
            default:
                if (ins.JmpOp is JmpOp.Exit or JmpOp.Ja) return false;
                if (ins.JmpOp == JmpOp.Call) return ins.SourceIsReg && ins.Dst == fp;
                return ins.Dst == fp || (ins.SourceIsReg && ins.Src == fp);
        }
    }

    /// <summary>
    /// The longest chain of frames starting at <paramref name="start"/>, or -1 when a call cycle (recursion) is
    /// reachable. A frame's code is whatever its entry reaches by fall-through and jumps: the same
    /// dynamic notion of a function as the interpreter's.
    /// </summary>
    static int CallDepth(Instruction[] program, SortedSet<int> callTargets, int start)
    {
        var callees = new Dictionary<int, HashSet<int>>();
        foreach (int entry in callTargets.Prepend(start)) callees[entry] = Callees(program, entry);
        var memo = new Dictionary<int, int>();
        var onPath = new HashSet<int>();
        int Depth(int entry)
        {
            if (memo.TryGetValue(entry, out int known)) return known;
            if (!onPath.Add(entry)) return -1;
            int deepest = 0;
            foreach (int callee in callees[entry])
            {
                int d = Depth(callee);
                if (d < 0) return -1;
                deepest = Math.Max(deepest, d);
            }
            onPath.Remove(entry);
            return memo[entry] = deepest + 1;
        }
        return Depth(start);
    }

    static HashSet<int> Callees(Instruction[] program, int entry)
    {
        var result = new HashSet<int>();
        var seen = new bool[program.Length];
        var work = new Stack<int>();
        work.Push(entry);
        while (work.Count > 0)
        {
            int i = work.Pop();
            if (i < 0 || i >= program.Length || seen[i]) continue;
            seen[i] = true;
            var ins = program[i];
            if (ins.IsExit) continue;
            if (ins.IsCall && ins.Src == (byte)CallKind.Local) result.Add(i + 1 + ins.Imm);
            if (ins.IsBranch)
            {
                work.Push(i + 1 + ins.BranchOffset);
                if (ins.IsUnconditionalJump) continue;
            }
            work.Push(ins.IsLdImm64 ? i + 2 : i + 1);
        }
        return result;
    }
}

/// <summary>How a <c>bpf_map_lookup_elem</c> is compiled once the verifier has pinned its map.</summary>
internal enum MapCall
{
    /// <summary>The generic helper call (map resolved from its handle at run time).</summary>
    None,
    /// <summary>ARRAY: inlined bounds check and address arithmetic on constants.</summary>
    ArrayInline,
    /// <summary>PERCPU_ARRAY: as ARRAY, plus the current CPU's slot.</summary>
    PerCpuArrayInline,
    /// <summary>HASH, LPM_TRIE, SOCKMAP, SOCKHASH: a static call on the map instance held by the closure.</summary>
    Closure,
}
