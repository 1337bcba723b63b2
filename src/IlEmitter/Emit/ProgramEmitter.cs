using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
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

    static readonly FieldInfo s_isProbe = typeof(JitClosure).GetField(nameof(JitClosure.IsProbe))!;

    /// <summary>Emits <paramref name="shape"/>'s program; returns where each slot's IL starts.</summary>
    public static List<(int Slot, int IlOffset)> Emit(ILGenerator il, ProgramShape shape, Helper?[] helpers, JitOptions options)
    {
        var c = new EmitContext(il, shape, helpers, options);
        EmitPrologue(c);
        var frameReturn = c.DefineLabel();
        var program = shape.Program;
        for (int i = 0; i < program.Length; i++)
        {
            var ins = program[i];
            c.BeginInstruction(i);
            switch (ins.Class)
            {
                case InstructionClass.Alu or InstructionClass.Alu64:
                    AluEmitter.Emit(c, ins);
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
                    i++;
                    break;
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
        }
        c.CheckEmptyStack();
        if (shape.HasLocalCalls)
        {
            c.BeginBlock(EmitContext.FrameReturnSlot);
            CallEmitter.EmitFrameReturn(c, frameReturn);
        }
        c.CheckEmptyStack();
        return c.Markers;
    }

    static void EmitPrologue(EmitContext c)
    {
        c.BeginBlock(EmitContext.PrologueSlot);
        if (c.Options.ProbeOnCompile)
        {
            // if (closure.IsProbe) return 0;   (compile-time probe: makes RyuJIT compile the method now)
            var start = c.DefineLabel();
            c.Ldarg(0);
            c.Ldfld(s_isProbe);
            c.Brfalse(start);
            c.LdcI8(0);
            c.Ret();
            c.MarkLabel(start);
        }
        // r1 = arg r1; r2 = arg r2 (a callback: r1..r5 = args); the others = 0   (InitLocals is off)
        var shape = c.Shape;
        int args = shape.IsCallback ? 5 : 2;
        for (int r = 0; r <= 9; r++)
        {
            if (r >= 1 && r <= args) c.Ldarg(r);
            else c.LdcI8(0);
            c.StReg(r);
        }
        if (shape.BlockBytes > 0)
        {
            // stack = localloc(frames * 512 + saved-frame records)
            c.LdcI4(shape.BlockBytes);
            c.Op(OpCodes.Conv_U);
            c.Op(OpCodes.Localloc);
            c.Stloc(c.StackBase);
            if (c.Options.ZeroStack && shape.StackBytes > 0)
            {
                // memset(stack, 0, 512): the main frame; a local call zeroes each frame it enters
                c.ZeroFrame(() => c.Ldloc(c.StackBase));
            }
        }
        CheckedMemory.EmitEnterStack(c);
        // r10 = stack + 512   (0 when the program never reads r10)
        if (shape.UsesStack)
        {
            c.Ldloc(c.StackBase);
            c.LdcI4(Interpreter.StackSize);
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
        if (shape.IsCallback)
        {
            // goto entry   (a callback starts at its subprogram's first slot)
            c.Br(c.LabelOf(shape.Entry));
        }
    }
}
