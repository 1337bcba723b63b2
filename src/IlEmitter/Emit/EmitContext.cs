using System.Diagnostics;
using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// The state of one emission and the emit macros every instruction-family emitter writes with
/// (<c>LdReg</c>, <c>StReg</c>, <c>LdcI8</c>, <c>Call</c>, <c>Br</c>), in the manner of .NET's
/// RegexCompiler. It tracks the IL evaluation-stack depth as it goes: every eBPF instruction's IL
/// must start and end with an empty stack, and a macro sequence that breaks that raises a
/// <see cref="BpfCompileException"/> here instead of an InvalidProgramException at the first call.
/// </summary>
internal sealed class EmitContext
{
    readonly ILGenerator _il;
    readonly LocalBuilder[] _regs = new LocalBuilder[BpfAbi.RegisterCount];
    readonly Label[] _labels;
    int _depth;
    LocalBuilder? _stackBase, _stackBlock, _frameDepth, _saved, _stop, _key, _loops;

    public EmitContext(ILGenerator il, ProgramShape shape, Helper?[] helpers, JitOptions options)
    {
        _il = il;
        Shape = shape;
        Helpers = helpers;
        Options = options;
        // Declared first and in this order so that local n is register rn; the others only when used.
        for (int r = 0; r <= BpfAbi.MaxRegister; r++) _regs[r] = Declare(typeof(ulong), $"r{r}");
        _labels = new Label[shape.Program.Length];
        for (int i = 0; i < _labels.Length; i++)
            if (shape.IsTarget[i]) _labels[i] = il.DefineLabel();
    }

    public ProgramShape Shape { get; }

    /// <summary>Per slot: the helper a <c>call imm</c> there reaches (resolved by <see cref="ProgramChecks.CheckRunnable"/>).</summary>
    public Helper?[] Helpers { get; }
    public JitOptions Options { get; }
    public Instruction[] Program => Shape.Program;

    /// <summary>The eBPF slot being emitted.</summary>
    public int Index { get; private set; } = -1;

    /// <summary>Pointer to the stack block (<see cref="StackBlock"/>): the frames' stacks, then the saved-frame area.</summary>
    public LocalBuilder StackBase => _stackBase ??= Declare(typeof(nint), "stack");

    /// <summary>The stack block itself: a <see cref="JitStackBlock"/> struct local of at least <see cref="ProgramShape.BlockBytes"/> bytes.</summary>
    public LocalBuilder StackBlock => _stackBlock ??= Declare(JitStackBlock.For(Shape.BlockBytes), "block");

    /// <summary>The current frame number (0 = the main program); only with local calls.</summary>
    public LocalBuilder Depth => _frameDepth ??= Declare(typeof(int), "depth");

    /// <summary>Scratch pointer to a saved-frame record.</summary>
    public LocalBuilder Saved => _saved ??= Declare(typeof(nint), "saved");

    /// <summary>callx's "the program ended" flag.</summary>
    public LocalBuilder Stop => _stop ??= Declare(typeof(bool), "stop");

    /// <summary>The current frame's may_goto budget (<see cref="Op.MayGotoBudget"/> at frame entry); only with may_goto.</summary>
    public LocalBuilder Loops => _loops ??= Declare(typeof(int), "loops");

    /// <summary>Scratch: the address a runtime guard tests (<see cref="CheckedMemory"/>).</summary>
    public LocalBuilder GuardAddress => _guardAddress ??= Declare(typeof(ulong), "guard");

    /// <summary>The local holding the stack slot at frame offset <paramref name="slot"/> (<see cref="ProgramShape.LocalSlots"/>).</summary>
    public LocalBuilder SlotLocal(int slot)
    {
        if (!_slots.TryGetValue(slot, out var local)) _slots[slot] = local = Declare(typeof(ulong), StackSlots.LocalName(slot));
        return local;
    }

    readonly Dictionary<int, LocalBuilder> _slots = [];

    /// <summary>Scratch: the u32 key of an inlined array-map lookup.</summary>
    public LocalBuilder Key => _key ??= Declare(typeof(uint), "key");

    /// <summary>IL offset where each emitted slot's code starts, in slot order.</summary>
    public List<(int Slot, int IlOffset)> Markers { get; } = [];

    /// <summary>The name of each declared local, by local index (r0-r10 are locals 0-10).</summary>
    public List<string> LocalNames { get; } = [];

    /// <summary>Per slot: what a verifier fact or an optimisation changed in its code, for IL listings.</summary>
    public Dictionary<int, List<string>> Notes { get; } = [];

    /// <summary>Records a note on the current slot (printed as <c>; note</c> under its header).</summary>
    public void Note(string text)
    {
        if (!Notes.TryGetValue(Index, out var list)) Notes[Index] = list = [];
        if (!list.Contains(text)) list.Add(text);   // an unrolled loop emits its body twice
    }

    /// <summary>The verifier's facts about the program, or null.</summary>
    public ProgramFacts? Facts => Shape.Facts;

    /// <summary>True when the stack is zeroed when a frame is entered.</summary>
    public bool ZeroesStack => Shape.ZeroesStack(Options);

    LocalBuilder? _guardAddress;

    LocalBuilder Declare(Type type, string name)
    {
        LocalNames.Add(name);
        return _il.DeclareLocal(type);
    }

    /// <summary>Starts a block that belongs to no slot (<see cref="PrologueSlot"/>, <see cref="FrameReturnSlot"/>).</summary>
    public void BeginBlock(int pseudoSlot)
    {
        CheckEmptyStack();
        Index = -1;
        Markers.Add((pseudoSlot, _il.ILOffset));
    }

    /// <summary>Marker of the prologue in <see cref="Markers"/>.</summary>
    public const int PrologueSlot = -1;

    /// <summary>Marker of the shared return-from-local-call block in <see cref="Markers"/>.</summary>
    public const int FrameReturnSlot = -2;

    /// <summary>
    /// Starts slot <paramref name="index"/>: checks the stack is empty, marks its label (not for the second
    /// copy of an unrolled loop body, <paramref name="copy"/>), records its IL offset.
    /// </summary>
    public void BeginInstruction(int index, bool copy = false)
    {
        CheckEmptyStack();
        Index = index;
        if (Shape.IsTarget[index] && !copy) _il.MarkLabel(_labels[index]);
        Markers.Add((index, _il.ILOffset));
    }

    /// <summary>Throws when IL left values on the evaluation stack across an eBPF instruction boundary.</summary>
    public void CheckEmptyStack()
    {
        if (_depth != 0) throw Error($"internal emitter error: {_depth} value(s) left on the IL stack");
    }

    /// <summary>A compile error at the current slot.</summary>
    public BpfCompileException Error(string reason) =>
        new(Index, Index >= 0 ? Disassembler.Format(Program, Index) : "", reason);

    /// <summary>The label of slot <paramref name="slot"/> (a jump target or return site).</summary>
    public Label LabelOf(int slot)
    {
        if (slot < 0 || slot >= _labels.Length || !Shape.IsTarget[slot]) throw Error($"no label at slot {slot}");
        return _labels[slot];
    }

    public Label DefineLabel() => _il.DefineLabel();
    public void MarkLabel(Label label) => _il.MarkLabel(label);

    // ---- Emit macros: one IL instruction each, with the stack effect tracked. ----

    public void LdReg(int r) => Op(OpCodes.Ldloc, _regs[Reg(r)]);
    public void StReg(int r) => Op(OpCodes.Stloc, _regs[Reg(r)]);
    public void Ldloc(LocalBuilder l) => Op(OpCodes.Ldloc, l);
    public void Stloc(LocalBuilder l) => Op(OpCodes.Stloc, l);
    public void Ldloca(LocalBuilder l) => Op(OpCodes.Ldloca, l);
    public void LdcI8(long value) => Op(OpCodes.Ldc_I8, value);
    public void LdcI4(int value) => Op(OpCodes.Ldc_I4, value);
    public void Ldarg(int index)
    {
        switch (index)
        {
            case 0: Op(OpCodes.Ldarg_0); break;
            case 1: Op(OpCodes.Ldarg_1); break;
            case 2: Op(OpCodes.Ldarg_2); break;
            case 3: Op(OpCodes.Ldarg_3); break;
            case 4 or 5: Op(OpCodes.Ldarg_S, (byte)index); break;
            default: throw new ArgumentOutOfRangeException(nameof(index));
        }
    }
    public void Br(Label target) { Op(OpCodes.Br, target); AfterUnconditional(); }
    public void Brtrue(Label target) => Op(OpCodes.Brtrue, target);
    public void Brfalse(Label target) => Op(OpCodes.Brfalse, target);
    /// <summary>A two-operand conditional branch (<c>beq</c>, <c>bgt.un</c>, ...).</summary>
    public void Branch(OpCode op, Label target) => Op(op, target);
    public void Ret()
    {
        if (_containEnd is { } end)
        {
            // result = r0; leave end   (no ret inside the protected region)
            Stloc(_result!);
            _il.Emit(OpCodes.Leave, end);
        }
        else Op(OpCodes.Ret);
        AfterUnconditional();
    }

    Label? _containEnd;
    LocalBuilder? _result;

    /// <summary>
    /// Opens the protected region of a method that contains its faults (<see cref="JitOptions.ContainFaults"/>): from
    /// here on <see cref="Ret"/> leaves it with r0 in a result local.
    /// </summary>
    public void BeginContainment()
    {
        _result = Declare(typeof(ulong), "result");
        _containEnd = _il.BeginExceptionBlock();
    }

    static readonly MethodInfo s_isFault = typeof(RunFaults).GetMethod(nameof(RunFaults.IsFault))!;
    static readonly MethodInfo s_contain = typeof(RunFaults).GetMethod(nameof(RunFaults.Contain))!;

    /// <summary>
    /// Closes the protected region: <c>filter (RunFaults.IsFault(e)) { RunFaults.Contain(e); goto faulted; }</c>, then
    /// <c>return result</c>, and at <c>faulted</c> <c>return RunFaults.Sentinel</c>. The filter and the handler read
    /// nothing of the frame but the exception and write nothing the method reads after them, so no local of the
    /// program (nor the result) is kept in memory for them.
    /// </summary>
    public void EndContainment()
    {
        CheckEmptyStack();
        var faulted = _il.DefineLabel();
        _il.BeginExceptFilterBlock();
        _il.Emit(OpCodes.Castclass, typeof(Exception));
        _il.Emit(OpCodes.Call, s_isFault);
        _il.BeginCatchBlock(null!);
        _il.Emit(OpCodes.Castclass, typeof(Exception));
        _il.Emit(OpCodes.Call, s_contain);
        _il.Emit(OpCodes.Pop);
        _il.Emit(OpCodes.Leave, faulted);
        _il.EndExceptionBlock();
        _containEnd = null;
        _il.Emit(OpCodes.Ldloc, _result!);
        _il.Emit(OpCodes.Ret);
        _il.MarkLabel(faulted);
        _il.Emit(OpCodes.Ldc_I8, unchecked((long)RunFaults.Sentinel));
        _il.Emit(OpCodes.Ret);
    }
    public void Switch(Label[] targets) => Op(OpCodes.Switch, targets);

    /// <summary>Loads register r<paramref name="r"/> truncated to 32 bits (an int32 on the IL stack).</summary>
    public void LdReg32(int r) { LdReg(r); Op(OpCodes.Conv_U4); }

    /// <summary>A call to a static or instance method, its stack effect derived from its signature.</summary>
    public void Call(MethodInfo method)
    {
        Debug.Assert(method.IsStatic || method.DeclaringType is { IsSealed: true });
        int pops = method.GetParameters().Length + (method.IsStatic ? 0 : 1);
        Pop(pops);
        _il.Emit(OpCodes.Call, method);
        if (method.ReturnType != typeof(void)) _depth++;
    }

    /// <summary>An opcode without operand.</summary>
    public void Op(OpCode op) { Track(op); _il.Emit(op); }
    public void Op(OpCode op, byte arg) { Track(op); _il.Emit(op, arg); }
    void Op(OpCode op, LocalBuilder local) { Track(op); _il.Emit(op, local); }
    void Op(OpCode op, long value) { Track(op); _il.Emit(op, value); }
    void Op(OpCode op, int value) { Track(op); _il.Emit(op, value); }
    void Op(OpCode op, Label label) { Track(op); _il.Emit(op, label); }
    void Op(OpCode op, Label[] labels) { Track(op); _il.Emit(op, labels); }

    /// <summary>Loads a field of the object on the stack.</summary>
    public void Ldfld(FieldInfo field)
    {
        Pop(1);
        _il.Emit(OpCodes.Ldfld, field);
        _depth++;
    }

    /// <summary>Bytes per <c>initblk</c> when zeroing a frame: RyuJIT unrolls constant-size blocks up to
    /// this size into vector stores, and calls a memset helper above it.</summary>
    const int ZeroChunk = 128;

    /// <summary>
    /// memset(address, 0, frame size) for one stack frame, as unrolled <c>initblk</c>s of at most 128 bytes;
    /// <paramref name="pushAddress"/> pushes the frame's lowest address.
    /// </summary>
    public void ZeroFrame(Action pushAddress)
    {
        int size = Shape.FrameSize;
        for (int offset = 0; offset < size; offset += ZeroChunk)
        {
            pushAddress();
            if (offset > 0) { LdcI4(offset); Op(OpCodes.Add); }
            LdcI4(0);
            LdcI4(Math.Min(ZeroChunk, size - offset));
            Op(OpCodes.Initblk);
        }
    }

    /// <summary>A prefix (<c>unaligned.</c>) changes nothing on the stack.</summary>
    public void Unaligned() => _il.Emit(OpCodes.Unaligned, (byte)1);

    static int Reg(int r) => r is >= 0 and <= BpfAbi.MaxRegister ? r : throw new ArgumentOutOfRangeException(nameof(r), r, "register");

    void AfterUnconditional() => CheckEmptyStack();

    void Pop(int n)
    {
        if (_depth < n) throw Error($"internal emitter error: IL stack underflow ({_depth} < {n})");
        _depth -= n;
    }

    void Track(OpCode op)
    {
        Pop(op.StackBehaviourPop switch
        {
            StackBehaviour.Pop0 => 0,
            StackBehaviour.Pop1 or StackBehaviour.Popi or StackBehaviour.Popref => 1,
            StackBehaviour.Pop1_pop1 or StackBehaviour.Popi_pop1 or StackBehaviour.Popi_popi or StackBehaviour.Popi_popi8
                or StackBehaviour.Popi_popr4 or StackBehaviour.Popi_popr8 or StackBehaviour.Popref_pop1 or StackBehaviour.Popref_popi => 2,
            StackBehaviour.Popi_popi_popi or StackBehaviour.Popref_popi_popi or StackBehaviour.Popref_popi_popi8
                or StackBehaviour.Popref_popi_popr4 or StackBehaviour.Popref_popi_popr8 or StackBehaviour.Popref_popi_popref => 3,
            StackBehaviour.Varpop when op == OpCodes.Ret => 1,
            _ => throw Error($"internal emitter error: untracked opcode {op.Name}"),
        });
        _depth += op.StackBehaviourPush switch
        {
            StackBehaviour.Push0 => 0,
            StackBehaviour.Push1 or StackBehaviour.Pushi or StackBehaviour.Pushi8 or StackBehaviour.Pushr4
                or StackBehaviour.Pushr8 or StackBehaviour.Pushref => 1,
            StackBehaviour.Push1_push1 => 2,
            _ => throw Error($"internal emitter error: untracked opcode {op.Name}"),
        };
    }
}
