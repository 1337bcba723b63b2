using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Emits a whole program into any <see cref="ILGenerator"/> — the running DynamicMethod's or a
/// persisted assembly's — for a method <c>ulong (JitClosure closure, ulong r1, ulong r2)</c>:
/// the prologue (registers, stack block), then each slot through its family's emitter, in slot
/// order, then the shared frame-return block when there are local calls. Both targets run this
/// same code, so what is dumped is what runs.
/// </summary>
internal static class ProgramEmitter
{
    /// <summary>The method's parameter types (argument 0 is the closure the delegate binds).</summary>
    public static readonly Type[] ParameterTypes = [typeof(JitClosure), typeof(ulong), typeof(ulong)];

    /// <summary>A callback method's parameter types: the closure, then r1-r5 (<see cref="BpfCallback"/>).</summary>
    public static readonly Type[] CallbackParameterTypes = [typeof(JitClosure), typeof(ulong), typeof(ulong), typeof(ulong), typeof(ulong), typeof(ulong)];

    /// <summary>Emits <paramref name="shape"/>'s program; returns where each slot's IL starts, the notes and the local names.</summary>
    public static EmitRecord Emit(ILGenerator il, ProgramShape shape, Helper?[] helpers, JitOptions options)
    {
        var c = new EmitContext(il, shape, helpers, options);
        // The entry of a hook's program contains its faults (RunFaults); a callback's faults belong to its caller.
        bool contain = options.ContainFaults && !shape.IsCallback;
        if (contain) c.BeginContainment();
        EmitPrologue(c);
        var frameReturn = c.DefineLabel();
        var program = shape.Program;
        for (int i = 0; i < program.Length; i++)
        {
            if (shape.UnrolledLoops.TryGetValue(i, out int jump))
            {
                // (body; if (!cond) goto exit;) x (copies - 1); body; if (cond) goto head   (one taken branch per copies iterations)
                int copies = Peephole.UnrollCopies(jump - i);
                for (int copy = 0; copy < copies - 1; copy++)
                {
                    for (int k = i; k < jump; k++) k = EmitSlot(c, k, frameReturn, copy: copy > 0);
                    c.BeginInstruction(jump, copy: true);
                    c.Note($"loop unrolled {copies} times: exit test between copies");
                    JumpEmitter.EmitInverted(c, jump, program[jump]);
                }
                for (int k = i; k < jump; k++) k = EmitSlot(c, k, frameReturn, copy: true);
                i = jump;
            }
            i = EmitSlot(c, i, frameReturn, copy: false);
        }
        c.CheckEmptyStack();
        if (shape.HasLocalCalls)
        {
            c.BeginBlock(EmitContext.FrameReturnSlot);
            CallEmitter.EmitFrameReturn(c, frameReturn);
        }
        c.CheckEmptyStack();
        if (contain) c.EndContainment();
        return new EmitRecord(c.Markers, c.Notes, c.LocalNames);
    }

    /// <summary>Emits slot <paramref name="i"/> (<paramref name="copy"/>: again, as an unrolled loop's second copy); returns the last slot it used.</summary>
    static int EmitSlot(EmitContext c, int i, Label frameReturn, bool copy)
    {
        var shape = c.Shape;
        var program = shape.Program;
        var ins = program[i];
        c.BeginInstruction(i, copy);
        if (!shape.Reachable[i])
        {
            // Dead code: the verifier found no path here.
            c.Note("fact: unreachable, not emitted");
            return ins.IsLdImm64 ? i + 1 : i;
        }
        if (IsDeadStore(shape, i, ins))
        {
            // A result no later instruction reads.
            c.Note($"r{ins.Dst} is never read afterwards: not emitted");
            return ins.IsLdImm64 ? i + 1 : i;
        }
        if (shape.AbsorbedStores.TryGetValue(i, out int mergedAt))
        {
            // Part of a group of byte stores written by one wider store at an earlier slot.
            c.Note($"byte store merged into the store at slot {mergedAt}: not emitted");
            return i;
        }
        if (shape.MergedStores.TryGetValue(i, out var group))
        {
            MemoryEmitter.EmitMergedStore(c, group);
            return i;
        }
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64 when ins.AluOp is AluOp.Div or AluOp.Mod && shape.Facts is { } f && f[i].DivisorNonZero:
                AluEmitter.EmitDivNonZero(c, ins);
                break;
            case InstructionClass.Ldx when shape.Facts is { } f && f[i].CtxField != null:
                CheckedMemory.EmitCheck(c, ins, ins.Src, MemoryAccess.Load);
                CtxLoadEmitter.Emit(c, ins, f[i], f.ProgramType);
                break;
            case InstructionClass.Alu or InstructionClass.Alu64:
                AluEmitter.Emit(c, ins);
                break;
            case InstructionClass.Ldx when shape.Facts is { } f && f[i].ProbeMem:
                MemoryEmitter.EmitProbeLoad(c, ins);
                break;
            case InstructionClass.Ldx:
                MemoryEmitter.EmitLoad(c, ins);
                break;
            case InstructionClass.St:
                MemoryEmitter.EmitStore(c, ins);
                break;
            case InstructionClass.Stx when ins.MemMode == MemMode.Atomic:
                AtomicEmitter.Emit(c, ins);
                break;
            case InstructionClass.Stx:
                MemoryEmitter.EmitStore(c, ins);
                break;
            case InstructionClass.Ld when ins.IsLdImm64:
                MemoryEmitter.EmitLdImm64(c, i, ins);
                return i + 1;
            case InstructionClass.Jmp or InstructionClass.Jmp32 when ins.IsBranch:
                JumpEmitter.Emit(c, i, ins);
                break;
            case InstructionClass.Jmp when ins.Opcode == Op.Call:
                CallEmitter.EmitCall(c, i, ins);
                break;
            case InstructionClass.Jmp when ins.Opcode == Op.CallX:
                CallEmitter.EmitCallX(c, i, ins);
                break;
            case InstructionClass.Jmp when ins.IsExit:
                CallEmitter.EmitExit(c, frameReturn);
                break;
            default:
                throw c.Error($"unsupported instruction 0x{ins.Opcode:x2}");
        }
        return i;
    }

    /// <summary>An ALU result or ld_imm64 constant that no instruction reads (loads stay: they touch memory).</summary>
    static bool IsDeadStore(ProgramShape shape, int i, Instruction ins) =>
        (ins.IsAlu || ins.IsLdImm64) && ins.Dst != 10 && (shape.LiveOut[i] & (1 << ins.Dst)) == 0;

    static void EmitPrologue(EmitContext c)
    {
        c.BeginBlock(EmitContext.PrologueSlot);
        // r1 = arg r1; r2 = arg r2 (a callback: r1..r5 = args); the others = 0   (InitLocals is off)
        // Only registers some path reads before writing them are set.
        var shape = c.Shape;
        int args = shape.IsCallback ? 5 : 2;
        for (int r = 0; r <= 9; r++)
        {
            if ((shape.LiveAtEntry & (1 << r)) == 0) continue;
            if (r >= 1 && r <= args) c.Ldarg(r);
            else c.LdcI8(0);
            c.StReg(r);
        }
        if (shape.BlockBytes > 0)
        {
            // stack = &block   (a struct local of at least frames * frame size + saved-frame records bytes:
            // part of the fixed frame, no localloc, so no GS cookie; not zeroed, InitLocals is off)
            c.Ldloca(c.StackBlock);
            c.Op(OpCodes.Conv_U);
            c.Stloc(c.StackBase);
            if (c.ZeroesStack && shape.StackBytes > 0)
            {
                // memset(stack, 0, frame size): the main frame; a local call zeroes each frame it enters
                c.ZeroFrame(() => c.Ldloc(c.StackBase));
            }
        }
        if (shape.LocalSlots is { } slots)
        {
            // fp_8 = 0; ...   (the stack slots held in locals start as the zeroed stack would)
            foreach (int slot in slots)
            {
                c.LdcI8(0);
                c.Stloc(c.SlotLocal(slot));
            }
        }
        CheckedMemory.EmitEnterStack(c);
        // r10 = stack + frame size   (0 when the program never reads r10)
        if (shape.UsesStack)
        {
            c.Ldloc(c.StackBase);
            c.LdcI4(shape.FrameSize);
            c.Op(OpCodes.Add);
            c.Op(OpCodes.Conv_U8);
        }
        else c.LdcI8(0);
        c.StReg(10);
        if (shape.HasLocalCalls)
        {
            // depth = 0
            c.LdcI4(0);
            c.Stloc(c.Depth);
        }
        if (shape.HasMayGoto)
        {
            // loops = BPF_MAX_LOOPS   (the frame's may_goto budget; a callback is a frame of its own)
            c.LdcI4(Op.MayGotoBudget);
            c.Stloc(c.Loops);
        }
        if (shape.IsCallback)
        {
            // goto entry   (a callback starts at its subprogram's first slot)
            c.Br(c.LabelOf(shape.Entry));
        }
    }
}

/// <summary>What one emission recorded for listings: where each slot's IL starts, per-slot notes, local names by index.</summary>
internal sealed record EmitRecord(List<(int Slot, int IlOffset)> Markers, Dictionary<int, List<string>> Notes, List<string> LocalNames);
