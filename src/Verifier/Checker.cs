using System.Text;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.ProgramTypes;

namespace BpfJit.Verifier;

/// <summary>A verification failure: the kernel-worded message and the instruction.</summary>
internal sealed class VerifyError(string message) : Exception(message);

/// <summary>
/// The path explorer (the kernel's <c>do_check</c>): executes the program abstractly, one path at a
/// time, depth first, pushing the other side of each undecided branch, pruning at checkpoints.
/// Instruction semantics live in the other parts of this class, one file per instruction family.
/// </summary>
internal sealed partial class Checker
{
    public const int JmpSeqLimit = 8192;

    // An array, not the caller's IReadOnlyList: indexing an array through the interface is framework generic code over
    // Instruction (SZArrayHelper) that RyuJIT compiles at a process's first program, and an interface call per read.
    readonly Instruction[] _insns;
    readonly VerifierOptions _opt;
    readonly HelperTable _helpers;
    // The program type's declaration: its context rule, helpers, packet access and return range.
    readonly IProgramTypeDefinition _type;
    readonly IReadOnlyList<MapInfo> _maps;
    // Outer map index → index of its inner map meta in _maps.
    readonly Dictionary<int, int> _innerMeta;
    readonly StringBuilder _log = new();
    readonly InsnFacts[] _facts;
    readonly int[] _stackDepth;
    readonly Stack<VerifierState> _pending = new();
    readonly Dictionary<int, List<VerifierState>> _explored = [];
    ProgramInfo _info = null!;
    StateEquivalence _eq = null!;
    VerifierState _cur = null!;
    int _idGen;
    int _processed;
    int _jmpsProcessed, _prevJmps, _prevInsns;
    bool _uninitRead;
    // A path turns an address into data (VerifierResult.MayExposeAddresses).
    bool _exposesAddress;

    int _resumedFrom = -1;
    int _totalStates, _peakStates, _liveStates;
    readonly bool _precision;

    public Checker(IReadOnlyList<Instruction> insns, VerifierOptions options, bool precision = true)
    {
        _precision = precision;
        _insns = insns as Instruction[] ?? [.. insns];
        _opt = options;
        _helpers = options.Helpers;
        _type = ProgramTypeRegistry.Get(options.ProgramType);
        (_maps, _innerMeta) = WithInnerMetas(options.Maps);
        _facts = new InsnFacts[_insns.Length];
        for (int i = 0; i < _facts.Length; i++) _facts[i] = new InsnFacts();
        _stackDepth = new int[Math.Max(1, _insns.Length)];
    }

    FuncState Frame => _cur.Cur;
    RegState[] Regs => _cur.Cur.Regs;
    /// <summary>Level-2 logging stops past this many characters (like the kernel's log buffer), with a note.</summary>
    const int MaxLogChars = 16 << 20;
    bool _logTruncated;

    bool Log2
    {
        get
        {
            if ((_opt.LogLevel & LogLevel2) == 0 || _logTruncated) return false;
            if (_log.Length < MaxLogChars) return true;
            _logTruncated = true;
            _log.AppendLine($"... log truncated at {MaxLogChars} characters; verification continues ...");
            return false;
        }
    }

    // The kernel's log_level bits (BPF_LOG_LEVEL1, BPF_LOG_LEVEL2, BPF_LOG_STATS): 1 and 2 print instructions,
    // 2 also every state, 4 the statistics; any non-zero level prints the messages.
    internal const int LogLevel1 = 1, LogLevel2 = 2, LogStats = 4, LogLevelInsns = LogLevel1 | LogLevel2;
    internal const int LogLevelMask = LogLevel1 | LogLevel2 | LogStats;

    readonly System.Diagnostics.Stopwatch _clock = new();

    public VerifierResult Run()
    {
        _clock.Start();
        int errInsn = -1;
        string? error = null;
        // resolve_pseudo_ldimm64 runs before the kernel's CFG checks: a program over the map limit is refused first.
        string? structural = CountUsedMaps();
        int at = -1;
        if (structural == null) _info = ProgramInfo.Build(_insns, _helpers, out structural, out at, _opt.KernelFunctions);
        if (structural == null && (structural = PrepareSignatures()) != null) at = 0;
        if (structural != null)
        {
            error = structural;
            errInsn = at;
            // An instruction BpfJit cannot decode is named by its index and bytes, as the kernel's log names a failing instruction.
            if ((_opt.LogLevel & LogLevelInsns) != 0 && at >= 0 && at < _insns.Length && BpfJit.Frontend.Decoder.Check(_insns[at]) != null)
                _log.AppendLine($"{at}: ({_insns[at].Opcode:x2}) {Disassembler.Format(_insns, at)}");
            _log.AppendLine(structural);
            return Finish(error, errInsn);
        }
        _eq = new StateEquivalence(_info, _precision);
        _cur = InitialState();
        if (Log2)
        {
            // The kernel lists the subprograms (check_subprogs), then the initial state.
            for (int sp = 0; sp < _info.SubprogStarts.Count; sp++) _log.Append("func#").Append(sp).Append(" @").Append(_info.SubprogStarts[sp]).AppendLine();
            _log.AppendLine("Live regs before insn:");
            for (int i = 0; i < _insns.Length; i++)
            {
                var mask = new char[10];
                for (int r = 0; r < 10; r++) mask[r] = (_info.LiveIn[i] & (1 << r)) != 0 ? (char)('0' + r) : '.';
                _log.Append(i.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(7)).Append(": ").Append(mask)
                    .Append(" (").Append(_insns[i].Opcode.ToString("x2")).Append(") ").AppendLine(Disassembler.Format(_insns, i));
                if (_insns[i].IsLdImm64) i++;
            }
            _log.Append("0: ").AppendLine(StateFormatter.Format(_cur, _maps));
        }
        try
        {
            Explore();
            VerifyCalledGlobals();
            CheckStackDepth();
        }
        catch (VerifyError e)
        {
            error = e.Message;
            errInsn = _cur?.Insn ?? -1;
            if ((_opt.LogLevel & LogLevelInsns) != 0 && errInsn >= 0 && errInsn < _insns.Length && !e.Message.StartsWith("BPF program is too large", StringComparison.Ordinal))
                _log.AppendLine($"{errInsn}: ({_insns[errInsn].Opcode:x2}) {Disassembler.Format(_insns, errInsn)}");
            if (_opt.LineInfo != null && errInsn >= 0 && _opt.LineInfo.TryGetValue(errInsn, out var line)) _log.AppendLine("; " + line);
            _log.AppendLine(e.Message);
        }
        return Finish(error, errInsn);
    }

    /// <summary>MAX_USED_MAPS: the distinct maps one program may reference.</summary>
    internal const int MaxUsedMaps = 64;

    /// <summary>
    /// resolve_pseudo_ldimm64's limit: every map an ld_imm64 names, reachable or not, counts once, and the 65th
    /// distinct one refuses the program before any path is walked (the kernel's -E2BIG).
    /// </summary>
    string? CountUsedMaps()
    {
        var used = new HashSet<int>();
        for (int i = 0; i < _insns.Length; i++)
        {
            var ins = _insns[i];
            if (!ins.IsLdImm64 || i + 1 >= _insns.Length) continue;
            i++;
            if ((Ld64Source)ins.Src is not (Ld64Source.MapFd or Ld64Source.MapIdx or Ld64Source.MapValue or Ld64Source.MapIdxValue)) continue;
            if (ins.Imm < 0 || ins.Imm >= _opt.Maps.Count || used.Contains(ins.Imm)) continue;
            if (used.Count >= MaxUsedMaps) return $"The total number of maps per program has reached the limit of {MaxUsedMaps}";
            used.Add(ins.Imm);
        }
        return null;
    }

    /// <summary>Explores every path from <see cref="_cur"/> until none is left.</summary>
    void Explore()
    {
        while (true)
        {
            if (!Step())
            {
                EndPath();
                if (_pending.Count == 0) break;
                _cur = _pending.Pop();
                _resumedFrom = _cur.From;
            }
        }
    }

    VerifierResult Finish(string? error, int errInsn)
    {
        _clock.Stop();
        int subprogs = _info?.SubprogStarts.Count ?? 1;
        var depths = new int[subprogs];
        for (int s = 0; s < subprogs; s++) depths[s] = _stackDepth[s];
        var stats = new VerifierStats(_clock.Elapsed, Math.Min(_processed, BpfAbi.MaxInsns + 1), _maxStatesPerInsn, _totalStates, _peakStates);
        bool statsBit = (_opt.LogLevel & LogStats) != 0;
        // print_verification_stats: with BPF_LOG_STATS the time and each subprogram's stack depth, then (always in
        // the kernel) the counts. At levels 1 and 2 alone BpfJit keeps a rejection's log to the error, as before.
        if (statsBit && _info != null)
        {
            _log.Append("verification time ").Append((long)stats.VerificationTime.TotalMicroseconds).AppendLine(" usec");
            // The kernel grows a frame's stack in whole 8-byte slots (grow_stack_state), so its depth is rounded up.
            _log.Append("stack depth ").AppendJoin('+', depths.Select(d => (d + 7) & ~7)).AppendLine();
        }
        if (error == null || (((_opt.LogLevel & LogLevel2) != 0 || statsBit) && _info != null))
            _log.AppendLine($"processed {stats.InsnsProcessed} insns (limit {BpfAbi.MaxInsns}) max_states_per_insn {stats.MaxStatesPerInsn} total_states {stats.TotalStates} peak_states {stats.PeakStates} mark_read 0");
        return new VerifierResult(error == null, _opt.LogLevel == 0 && error == null ? "" : _log.ToString(), error, errInsn, _facts, _processed, depths, _uninitRead)
        {
            MayExposeAddresses = _exposesAddress,
            Stats = stats,
        };
    }

    int _maxStatesPerInsn;

    VerifierState InitialState()
    {
        var s = new VerifierState();
        var f = new FuncState { FrameNo = 0, Subprog = 0 };
        f.Regs[1] = RegState.Pointer(RegType.PtrToCtx);
        f.Regs[10] = RegState.Pointer(RegType.PtrToStack);
        s.Frames.Add(f);
        s.Insn = 0;
        return s;
    }

    /// <summary>Ends the current path: checkpoints above it lose one pending branch.</summary>
    void EndPath()
    {
        for (var p = _cur.Parent; p != null; p = p.Parent)
        {
            if (--p.Branches > 0) break;
        }
    }

    int NewId() => ++_idGen;

    /// <summary>The instruction the current path executed last (the jump or call pushing a branch).</summary>
    int LastInsn() => _cur.History.Count > 0 ? _cur.History[^1].Insn : _cur.Insn;

    static VerifyError Err(string message) => new(message);

    /// <summary>Runs one instruction of the current path; false when the path ends (exit or pruned).</summary>
    bool Step()
    {
        int idx = _cur.Insn;
        if (++_processed > BpfAbi.MaxInsns)
            throw Err($"BPF program is too large. Processed {_processed} insn");
        RecordFacts(idx);
        bool pruned = _info.PrunePoint[idx] && IsStateVisited(idx);
        if (Log2 && _resumedFrom >= 0)
        {
            // The kernel's "from 3 to 5: <state>" when a pushed branch resumes ("... : safe" when pruned at once).
            _log.Append("from ").Append(_resumedFrom).Append(" to ").Append(idx).Append(": ").AppendLine(pruned ? "safe" : StateFormatter.Format(_cur, _maps));
            _resumedFrom = -1;
            if (pruned) return false;
            _log.Append(idx).Append(": ").AppendLine(StateFormatter.Format(_cur, _maps));
        }
        _resumedFrom = -1;
        if (pruned)
        {
            if (Log2) _log.AppendLine($"{idx}: safe");
            return false;
        }
        RecordHistory(idx);
        var ins = _insns[idx];
        if (!Log2) return Execute(ins, idx);
        var before = (RegState[])Regs.Clone();
        int frameBefore = _cur.CurFrame;
        bool goesOn = Execute(ins, idx);
        LogInsn(ins, idx, before, frameBefore, goesOn);
        return goesOn;
    }

    /// <summary>
    /// The kernel's level-2 instruction line: <c>5: (bf) r1 = r6                        ; R1=ctx() R6=ctx()</c>,
    /// the registers the instruction read or wrote after the <c>;</c>, as they are after it.
    /// </summary>
    void LogInsn(Instruction ins, int idx, RegState[] before, int frameBefore, bool goesOn)
    {
        var line = new StringBuilder();
        line.Append(idx).Append(": (").Append(ins.Opcode.ToString("x2")).Append(") ").Append(Disassembler.Format(_insns, idx));
        if (goesOn && _cur.CurFrame == frameBefore && !ins.IsCall)
        {
            var regs = Regs;
            var shown = new StringBuilder();
            for (int r = 0; r <= BpfAbi.MaxRegister; r++)
            {
                bool readsSrc = ins.Class is InstructionClass.Ldx or InstructionClass.Stx || (ins.SourceIsReg && ins.Class is not (InstructionClass.Ld or InstructionClass.St));
                bool touched = r == ins.Dst || (readsSrc && r == ins.Src);
                if (!touched && StateEquivalenceExact(before[r], regs[r])) continue;
                if (regs[r].Type == RegType.NotInit) continue;
                shown.Append(shown.Length == 0 ? "" : " ").Append('R').Append(r).Append('=').Append(StateFormatter.Reg(regs[r], _maps));
            }
            // A stack access at a constant offset also shows the slot, as the kernel does (fp-8=-44).
            int ptrReg = ins.Class == InstructionClass.Ldx ? ins.Src : ins.Class is InstructionClass.St or InstructionClass.Stx ? ins.Dst : -1;
            if (ptrReg >= 0 && regs[ptrReg].Type == RegType.PtrToStack && regs[ptrReg].VarOff.IsConst)
            {
                long at = regs[ptrReg].Off + (long)regs[ptrReg].VarOff.Value + ins.Offset;
                var stack = _cur.Frames[regs[ptrReg].Frame].Stack;
                int spi = (int)((-at - 1) / 8);
                if (at < 0 && spi < stack.Allocated / 8)
                {
                    shown.Append(shown.Length == 0 ? "" : " ").Append("fp").Append(-(spi + 1) * 8).Append('=')
                        .Append(stack.IsFullSpill(spi) ? StateFormatter.Reg(stack.Spilled[spi], _maps) : stack.SlotString(spi));
                }
            }
            if (shown.Length > 0)
            {
                line.Append(' ', Math.Max(1, 38 - line.Length)).Append("; ");
                if (frameBefore > 0) line.Append("frame").Append(frameBefore).Append(": ");
                line.Append(shown);
            }
        }
        _log.AppendLine(line.ToString());
    }

    static bool StateEquivalenceExact(in RegState a, in RegState b) =>
        a.Type == b.Type && a.Off == b.Off && a.VarOff == b.VarOff && a.Smin == b.Smin && a.Smax == b.Smax && a.Umin == b.Umin &&
        a.Umax == b.Umax && a.Id == b.Id && a.RefObjId == b.RefObjId && a.Aux == b.Aux && a.Frame == b.Frame;

    bool Execute(Instruction ins, int idx)
    {
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                CheckAlu(ins, idx);
                _cur.Insn = idx + 1;
                return true;
            case InstructionClass.Ldx:
                CheckLoad(ins, idx);
                _cur.Insn = idx + 1;
                return true;
            case InstructionClass.St or InstructionClass.Stx:
                if (ins.MemMode == MemMode.Atomic) CheckAtomic(ins, idx);
                else CheckStore(ins, idx);
                _cur.Insn = idx + 1;
                return true;
            case InstructionClass.Ld:
                CheckLdImm64(ins, _insns[idx + 1], idx);
                _cur.Insn = idx + 2;
                return true;
            default:
                return CheckJmpClass(ins, idx);
        }
    }

    void RecordFacts(int idx)
    {
        var f = _facts[idx];
        var regs = Regs;
        if (!f.Reachable)
        {
            f.Reachable = true;
            for (int r = 0; r < BpfAbi.RegisterCount; r++) f.Types[r] = regs[r].Type;
            return;
        }
        for (int r = 0; r < BpfAbi.RegisterCount; r++)
            if (f.Types[r] != regs[r].Type) f.Mixed |= (ushort)(1 << r);
    }

    /// <summary>The kernel's is_state_visited: prune against explored states, detect infinite loops, add a checkpoint.</summary>
    bool IsStateVisited(int idx)
    {
        if (!_explored.TryGetValue(idx, out var list)) _explored[idx] = list = [];
        bool callsCallback = _info.CallsCallback[idx];
        bool mayGoto = _insns[idx].IsMayGoto;
        bool iterNext = _info.IterNext[idx];
        // Checkpoints the kernel always adds (is_force_checkpoint): loops converge on them.
        bool forced = callsCallback || mayGoto || iterNext;
        // A checkpoint is added only after at least 2 jumps and 8 instructions since the last one (is_state_visited's
        // add_new_state), unless forced. Pruning differs with it: a path the kernel walks again instead of pruning
        // may meet a check the explored state passed differently (a variable-offset read of a spilled pointer is
        // allowed, a narrow fixed-offset one is not), so checkpoints follow the kernel's. Inside a loop that is still
        // being explored, one is added only every so often; while none is to be added, misses are not counted, or
        // the checkpoints of earlier iterations would be dropped.
        bool addNew = forced || (_jmpsProcessed - _prevJmps >= 2 && _processed - _prevInsns >= 8);
        int compared = list.Count;
        for (int i = 0; i < list.Count; i++)
        {
            var old = list[i];
            if (old.Branches > 0)
            {
                if (!forced && _jmpsProcessed - _prevJmps < 20 && _processed - _prevInsns < 100) addNew = false;
                // An iterator loop converges when a state at next() whose iterator is still active falls within
                // one still being explored (range within); next() is never an infinite loop (is_state_visited).
                if (iterNext)
                {
                    if (_eq.Equal(old, _cur, exact: false, rangeWithin: true) && ActiveIterAtR1())
                    {
                        old.Hits++;
                        PropagatePrecision(old);
                        return true;
                    }
                    goto skipLoopCheck;
                }
                // A may_goto loop converges when a state deeper in it falls within one still being
                // explored at the same may_goto (range within: precision marks are not final yet).
                if (mayGoto && old.MayGotoDepth != _cur.MayGotoDepth && _eq.Equal(old, _cur, exact: false, rangeWithin: true))
                {
                    old.Hits++;
                    PropagatePrecision(old);
                    return true;
                }
                // Callback iterations converge like the kernel's: a state at the helper call within one still
                // being explored there adds nothing new. Range within, as for iterators: the old state's
                // precision marks are not final while its iterations run. The call is no infinite loop.
                if (callsCallback)
                {
                    if (_eq.Equal(old, _cur, exact: false, rangeWithin: true))
                    {
                        old.Hits++;
                        PropagatePrecision(old);
                        return true;
                    }
                    goto skipLoopCheck;
                }
                if (old.Frames.Count == _cur.Frames.Count && old.CallbackUnrollDepth == _cur.CallbackUnrollDepth &&
                    old.MayGotoDepth == _cur.MayGotoDepth && !StateEquivalence.IterDepthsDiffer(old, _cur) && _eq.Equal(old, _cur, exact: true))
                    throw Err($"infinite loop detected at insn {idx}");
            }
            else if (_eq.Equal(old, _cur, exact: false))
            {
                old.Hits++;
                PropagatePrecision(old);
                return true;
            }
        skipLoopCheck:
            // Checkpoints that keep missing are dropped (the kernel's miss_cnt eviction); the
            // paths below them still count their branches through Parent.
            // A forced checkpoint still being explored may miss longer: an iterator loop converges against it.
            int n = forced && old.Branches > 0 ? 64 : 3;
            if (addNew) old.Misses++;
            if (old.Misses > old.Hits * n + n)
            {
                list.RemoveAt(i);
                _liveStates--;
                i--;
            }
        }
        // max_states_per_insn: the most checkpoints one visit compared against and missed (a hit returns before).
        _maxStatesPerInsn = Math.Max(_maxStatesPerInsn, compared);
        if (!addNew) return false;
        _prevJmps = _jmpsProcessed;
        _prevInsns = _processed;
        _totalStates++;
        _peakStates = Math.Max(_peakStates, ++_liveStates);
        if (_precision) ForgetPrecision(_cur);
        var cp = _cur.Clone();
        cp.History = _cur.History;
        _cur.History = [];
        cp.Branches = 1;
        cp.Parent = _cur.Parent;
        _cur.Parent = cp;
        list.Add(cp);
        return false;
    }

    /// <summary>Queues the other side of a branch (the kernel's push_stack).</summary>
    void Push(VerifierState st)
    {
        st.From = LastInsn();
        if (st.Parent != null) st.Parent.Branches++;
        _pending.Push(st);
        if (_pending.Count > JmpSeqLimit) throw Err($"The sequence of {_pending.Count} jumps is too complex.");
    }

    /// <summary>Checks that a register may be read (<c>R%d !read_ok</c>).</summary>
    void CheckRead(int regno)
    {
        if (Regs[regno].Type == RegType.NotInit) throw Err($"R{regno} !read_ok");
    }

    /// <summary>Checks that a register may be written (r10 is read-only).</summary>
    void CheckWrite(int regno)
    {
        if (regno == 10) throw Err("frame pointer is read only");
    }

    MapInfo Map(int index) => _maps[index];

    /// <summary>
    /// The program's maps, then the template of each map-in-map (the kernel's inner_map_meta) at an index past
    /// them, which a non-NULL lookup result of the outer map points to. No ld_imm64 can name those indexes, and
    /// the facts never resolve them to a live map: which inner map a lookup returns is known only at run time.
    /// </summary>
    static (IReadOnlyList<MapInfo> Maps, Dictionary<int, int> InnerMeta) WithInnerMetas(IReadOnlyList<MapInfo> maps)
    {
        var inner = new Dictionary<int, int>();
        if (!maps.Any(m => m.InnerMap != null)) return (maps, inner);
        var all = maps.ToList();
        for (int i = 0; i < maps.Count; i++)
        {
            if (maps[i].InnerMap is not { } meta) continue;
            inner[i] = all.Count;
            all.Add(meta);
        }
        return (all, inner);
    }

    string RegName(in RegState r) => StateFormatter.TypeName(r);

    /// <summary>
    /// The kernel's check_max_stack_depth: walks every call chain from the main program, following each
    /// local call and each callback address (ld_imm64 src 4) in instruction order, whether or not a path
    /// reached it, and adds up the frames' stack sizes. Each frame counts its depth rounded up to 16
    /// bytes (the kernel's round_up_stack_depth for a JIT-compiled program; an empty frame counts 0).
    /// The first chain over 512 bytes or of 8 frames is reported, with the kernel's numbers: the frames
    /// in that chain and their combined size.
    /// </summary>
    void CheckStackDepth()
    {
        // Best depth each subprogram was already walked from without error, per frame: a walk from the
        // same frame with no more stack below it finds nothing new (the kernel re-walks; same verdict).
        var done = new Dictionary<(int Subprog, int Frame), int>();
        void Walk(int subprog, int frame, int depth)
        {
            if (done.TryGetValue((subprog, frame), out int seen) && seen >= depth) return;
            int below = depth;
            depth += (_stackDepth[subprog] + 15) & ~15;
            if (depth > BpfAbi.StackSize)
                throw Err($"combined stack size of {frame + 1} calls is {depth}. Too large");
            for (int i = _info.SubprogStarts[subprog], end = _info.SubprogEnd(subprog); i < end; i++)
            {
                var ins = _insns[i];
                bool isCall = (ins.IsCall && ins.Src == (byte)CallKind.Local) || (ins.IsLdImm64 && ins.Src == (byte)Ld64Source.Func);
                if (isCall)
                {
                    if (frame + 1 >= BpfAbi.MaxCallFrames)
                        throw Err($"the call stack of {frame + 1} frames is too deep !");
                    Walk(_info.SubprogOf(i + ins.Imm + 1), frame + 1, depth);
                }
                if (ins.IsLdImm64) i++;
            }
            done[(subprog, frame)] = below;
        }
        Walk(0, 0, 0);
    }
}
