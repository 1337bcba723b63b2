using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Calls and exit. A helper call is a static <c>call</c> to the helper's implementation method,
/// resolved while compiling (RyuJIT inlines small ones); callx looks the helper up at run time
/// through the closure, as the interpreter does. A helper whose <see cref="HelperExit"/> fires ends
/// the whole program with a <c>ret</c> from whatever frame it is in.
/// <para>
/// bpf-to-bpf calls stay inside the one method: like the interpreter, a call saves r6-r9 and a
/// return-site number in a per-frame record, moves r10 up one 512-byte frame and jumps to the
/// callee; <c>exit</c> in a nested frame restores them and dispatches on the return-site number
/// with an IL <c>switch</c>. Registers stay IL locals across calls, recursion is bounded by the
/// frame counter (statically when the call graph is acyclic), and the host stack never grows.
/// </para>
/// </summary>
internal static class CallEmitter
{
    static readonly MethodInfo s_takeResult = typeof(TailCallState).GetMethod(nameof(TailCallState.TakeResult))!;
    static readonly MethodInfo s_callX = typeof(JitClosure).GetMethod(nameof(JitClosure.CallX))!;
    static readonly MethodInfo s_overflow = typeof(JitClosure).GetMethod(nameof(JitClosure.ThrowCallStackOverflow))!;

    public static void EmitCall(EmitContext c, int index, Instruction ins)
    {
        if (ins.Src != (byte)CallKind.Local) CheckedMemory.EmitHelperGuards(c, ins);
        if (ins.Src == (byte)CallKind.Local) EmitLocalCall(c, index, ins);
        else if (c.Shape.MapCalls[index] != MapCall.None) MapCallEmitter.Emit(c, index);
        else EmitHelperCall(c, index, c.Helpers[index] ?? throw c.Error("helper call was not resolved"));
    }

    /// <summary>r0 = helper(r1, r2, r3, r4, r5), then the helper's early exit.</summary>
    static void EmitHelperCall(EmitContext c, int index, Helper h)
    {
        // r0 = Helper.Method(r1, r2, r3, r4, r5)   (a verified call passes 0 for what the prototype does not take)
        ushort reads = c.Shape.HelperReads(index, h);
        for (int r = BpfAbi.FirstArgRegister; r <= BpfAbi.LastArgRegister; r++)
        {
            if ((reads & (1 << r)) != 0) c.LdReg(r);
            else c.LdcI8(0);
        }
        if (reads != 0x3e) c.Note($"fact: {h.Name} takes {h.Proto.Args.Length} argument(s), r{h.Proto.Args.Length + 1}-r5 not passed");
        c.Call(h.Method);
        c.StReg(0);
        if (h.Exit == HelperExit.None) return;
        // if (r0 == 0) return 0;   (TailCall: return TailCallState.TakeResult();)
        var next = c.DefineLabel();
        c.LdReg(0);
        c.Brtrue(next);
        if (h.Exit == HelperExit.TailCall) c.Call(s_takeResult);
        else c.LdcI8(0);
        c.Ret();
        c.MarkLabel(next);
    }

    /// <summary>callx rd: r0 = closure.CallX(rd, r1..r5, index, out stop); if (stop) return r0;</summary>
    public static void EmitCallX(EmitContext c, int index, Instruction ins)
    {
        CheckedMemory.EmitCallXGuards(c, ins);
        c.Ldarg(0);
        c.LdReg(ins.Dst);
        for (int r = BpfAbi.FirstArgRegister; r <= BpfAbi.LastArgRegister; r++) c.LdReg(r);
        c.LdcI4(index);
        c.Ldloca(c.Stop);
        c.Call(s_callX);
        c.StReg(0);
        var next = c.DefineLabel();
        c.Ldloc(c.Stop);
        c.Brfalse(next);
        c.LdReg(0);
        c.Ret();
        c.MarkLabel(next);
    }

    static void EmitLocalCall(EmitContext c, int index, Instruction ins)
    {
        int site = c.Shape.ReturnSiteOf[index + 1];
        if (c.Shape.NeedsDepthCheck)
        {
            // if (depth + 1 >= MaxFrames) throw call stack overflow
            var ok = c.DefineLabel();
            c.Ldloc(c.Depth);
            c.LdcI4(BpfAbi.MaxCallFrames - 1);
            c.Branch(OpCodes.Blt, ok);
            c.LdcI4(index);
            c.Call(s_overflow);
            c.MarkLabel(ok);
        }
        // saved = frame record of this depth; saved->r6..r9 = r6..r9; saved->site = site
        SavedRecord(c);
        for (int r = BpfAbi.FirstCalleeSaved; r <= BpfAbi.LastCalleeSaved; r++)
        {
            c.Ldloc(c.Saved);
            if (r > 6) { c.LdcI4((r - 6) * 8); c.Op(OpCodes.Add); }
            c.LdReg(r);
            c.Op(OpCodes.Stind_I8);
        }
        c.Ldloc(c.Saved);
        c.LdcI4(32);
        c.Op(OpCodes.Add);
        c.LdcI4(site);
        c.Op(OpCodes.Stind_I4);
        if (c.Shape.HasMayGoto)
        {
            // saved->loops = loops; loops = BPF_MAX_LOOPS   (each frame has its own may_goto budget)
            c.Ldloc(c.Saved);
            c.LdcI4(36);
            c.Op(OpCodes.Add);
            c.Ldloc(c.Loops);
            c.Op(OpCodes.Stind_I4);
            c.LdcI4(Op.MayGotoBudget);
            c.Stloc(c.Loops);
        }
        if (c.ZeroesStack && c.Shape.UsesStack)
        {
            // memset(r10, 0, 512): the callee's frame starts zeroed, as the interpreter zeroes a frame it enters
            c.ZeroFrame(() => { c.LdReg(10); c.Op(OpCodes.Conv_U); });
        }
        // depth++; r10 += 512; goto callee
        c.Ldloc(c.Depth);
        c.LdcI4(1);
        c.Op(OpCodes.Add);
        c.Stloc(c.Depth);
        c.LdReg(10);
        c.LdcI8(BpfAbi.StackSize);
        c.Op(OpCodes.Add);
        c.StReg(10);
        c.Br(c.LabelOf(index + 1 + ins.Imm));
    }

    /// <summary>exit: return r0, or with local calls go to the shared frame-return block.</summary>
    public static void EmitExit(EmitContext c, Label frameReturn)
    {
        if (!c.Shape.HasLocalCalls)
        {
            // return r0
            c.LdReg(0);
            c.Ret();
            return;
        }
        // goto frame_return   (returns r0 from the main frame, else to the caller)
        c.Br(frameReturn);
    }

    /// <summary>The shared exit path of programs with local calls.</summary>
    public static void EmitFrameReturn(EmitContext c, Label frameReturn)
    {
        c.MarkLabel(frameReturn);
        // if (depth == 0) return r0;
        var pop = c.DefineLabel();
        c.Ldloc(c.Depth);
        c.Brtrue(pop);
        c.LdReg(0);
        c.Ret();
        // depth--; saved = frame record of depth; r6..r9 = saved->r6..r9; r10 -= 512
        c.MarkLabel(pop);
        c.Ldloc(c.Depth);
        c.LdcI4(1);
        c.Op(OpCodes.Sub);
        c.Stloc(c.Depth);
        SavedRecord(c);
        for (int r = BpfAbi.FirstCalleeSaved; r <= BpfAbi.LastCalleeSaved; r++)
        {
            c.Ldloc(c.Saved);
            if (r > 6) { c.LdcI4((r - 6) * 8); c.Op(OpCodes.Add); }
            c.Op(OpCodes.Ldind_I8);
            c.StReg(r);
        }
        c.LdReg(10);
        c.LdcI8(BpfAbi.StackSize);
        c.Op(OpCodes.Sub);
        c.StReg(10);
        if (c.Shape.HasMayGoto)
        {
            // loops = saved->loops
            c.Ldloc(c.Saved);
            c.LdcI4(36);
            c.Op(OpCodes.Add);
            c.Op(OpCodes.Ldind_I4);
            c.Stloc(c.Loops);
        }
        // switch (saved->site) { case k: goto return_site_k; }
        c.Ldloc(c.Saved);
        c.LdcI4(32);
        c.Op(OpCodes.Add);
        c.Op(OpCodes.Ldind_I4);
        c.Switch(c.Shape.ReturnSites.Select(c.LabelOf).ToArray());
        // unreachable: every record holds a valid site
        c.LdReg(0);
        c.Ret();
    }

    /// <summary>saved = stack + savedAreaOffset + depth * 40</summary>
    static void SavedRecord(EmitContext c)
    {
        c.Ldloc(c.StackBase);
        c.LdcI4(c.Shape.SavedAreaOffset);
        c.Op(OpCodes.Add);
        c.Ldloc(c.Depth);
        c.LdcI4(ProgramShape.SavedFrameBytes);
        c.Op(OpCodes.Mul);
        c.Op(OpCodes.Conv_I);
        c.Op(OpCodes.Add);
        c.Stloc(c.Saved);
    }
}
