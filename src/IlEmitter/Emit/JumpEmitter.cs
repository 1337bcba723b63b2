using System.Reflection.Emit;
using BpfJit.Frontend;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// JMP and JMP32 branches: <c>ja</c>/<c>gotol</c> become <c>br</c>, conditional jumps a compare-and-branch
/// on the two operands (int64 for JMP, int32 for JMP32) to the target slot's label. Labels were
/// made for every target before emission, so backward jumps (loops) need nothing special.
/// <c>may_goto</c> counts down the frame's loop budget and jumps once it is spent.
/// </summary>
internal static class JumpEmitter
{
    /// <summary>Pushes the compared operands: rd and src (a register or the immediate), as 32-bit values for JMP32.</summary>
    static void LoadOperands(EmitContext c, Instruction ins)
    {
        if (ins.Class == InstructionClass.Jmp32)
        {
            c.LdReg32(ins.Dst);
            AluEmitter.LoadSource32(c, ins);
        }
        else
        {
            c.LdReg(ins.Dst);
            AluEmitter.LoadSource64(c, ins);
        }
    }

    /// <summary>
    /// The first copy of an unrolled loop's closing jump: <c>if (!(rd OP src)) goto next</c>, where next is
    /// the slot after the jump (the loop's exit).
    /// </summary>
    public static void EmitInverted(EmitContext c, int index, Instruction ins)
    {
        var exit = c.LabelOf(index + 1);
        // if (!(rd OP src)) goto exit
        LoadOperands(c, ins);
        if (ins.JmpOp == JmpOp.Jset)
        {
            c.Op(OpCodes.And);
            c.Brfalse(exit);
            return;
        }
        c.Branch(ins.JmpOp switch
        {
            JmpOp.Jeq => OpCodes.Bne_Un,
            JmpOp.Jgt => OpCodes.Ble_Un,
            JmpOp.Jge => OpCodes.Blt_Un,
            JmpOp.Jne => OpCodes.Beq,
            JmpOp.Jsgt => OpCodes.Ble,
            JmpOp.Jsge => OpCodes.Blt,
            JmpOp.Jlt => OpCodes.Bge_Un,
            JmpOp.Jle => OpCodes.Bgt_Un,
            JmpOp.Jslt => OpCodes.Bge,
            JmpOp.Jsle => OpCodes.Bgt,
            _ => throw c.Error($"unsupported jump operation 0x{(byte)ins.JmpOp:x2}"),
        }, exit);
    }

    public static void Emit(EmitContext c, int index, Instruction ins)
    {
        int targetSlot = index + 1 + ins.BranchOffset;
        var target = c.LabelOf(targetSlot);
        var reachable = c.Shape.Reachable;
        if (!ins.IsUnconditionalJump && !reachable[index + 1])
        {
            // The verifier found the fall-through dead: the condition always holds.
            c.Note("fact: always taken (the fall-through is unreachable)");
            c.Br(target);
            return;
        }
        if (!ins.IsUnconditionalJump && !reachable[targetSlot])
        {
            // The verifier found the target dead: the condition never holds.
            c.Note("fact: never taken (the target is unreachable), not emitted");
            return;
        }
        if (ins.IsUnconditionalJump)
        {
            // goto target
            c.Br(target);
            return;
        }
        if (ins.IsMayGoto)
        {
            // if (loops == 0) goto target; loops--;   (the kernel's rewrite of may_goto on a hidden stack slot)
            c.Ldloc(c.Loops);
            c.Brfalse(target);
            c.Ldloc(c.Loops);
            c.LdcI4(1);
            c.Op(OpCodes.Sub);
            c.Stloc(c.Loops);
            return;
        }
        // if (rd OP src) goto target   (JMP32: (uint)rd OP (uint)src)
        LoadOperands(c, ins);
        if (ins.JmpOp == JmpOp.Jset)
        {
            c.Op(OpCodes.And);
            c.Brtrue(target);
            return;
        }
        c.Branch(ins.JmpOp switch
        {
            JmpOp.Jeq => OpCodes.Beq,
            JmpOp.Jgt => OpCodes.Bgt_Un,
            JmpOp.Jge => OpCodes.Bge_Un,
            JmpOp.Jne => OpCodes.Bne_Un,
            JmpOp.Jsgt => OpCodes.Bgt,
            JmpOp.Jsge => OpCodes.Bge,
            JmpOp.Jlt => OpCodes.Blt_Un,
            JmpOp.Jle => OpCodes.Ble_Un,
            JmpOp.Jslt => OpCodes.Blt,
            JmpOp.Jsle => OpCodes.Ble,
            _ => throw c.Error($"unsupported jump operation 0x{(byte)ins.JmpOp:x2}"),
        }, target);
    }
}
