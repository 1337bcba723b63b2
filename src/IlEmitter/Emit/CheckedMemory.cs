using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime.Checked;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Checked mode (<see cref="JitOptions.Checked"/>): before every load, store and atomic, a call to
/// <see cref="MemoryRegions.Check"/> with the address, the width, this method's eBPF stack frames and the
/// slot, which throws <see cref="BpfCheckedModeException"/> unless the whole access lies inside memory
/// the program may touch. Each method also announces its stack block as it starts, so a callback
/// may reach its caller's stack. The default build emits none of this.
/// </summary>
internal static class CheckedMemory
{
    static readonly MethodInfo s_check = typeof(MemoryRegions).GetMethod(nameof(MemoryRegions.Check))!;
    static readonly MethodInfo s_checkMapValue = typeof(MemoryRegions).GetMethod(nameof(MemoryRegions.CheckMapValue))!;
    static readonly MethodInfo s_enterStack = typeof(MemoryRegions).GetMethod(nameof(MemoryRegions.EnterStack))!;
    static readonly MethodInfo s_checkHelper = typeof(JitClosure).GetMethod(nameof(JitClosure.CheckHelperArguments))!;

    /// <summary>In the prologue, after the stack block exists: <c>MemoryRegions.EnterStack(stack, stackBytes, isCallback)</c>.</summary>
    public static void EmitEnterStack(EmitContext c)
    {
        if (!c.Options.Checked) return;
        // MemoryRegions.EnterStack(stack, stackBytes, isCallback)   (0, 0 without a stack)
        if (c.Shape.StackBytes > 0) { c.Ldloc(c.StackBase); c.Op(OpCodes.Conv_U8); }
        else c.LdcI8(0);
        c.LdcI4(c.Shape.StackBytes);
        c.LdcI4(c.Shape.IsCallback ? 1 : 0);
        c.Call(s_enterStack);
    }

    /// <summary>
    /// Before a helper call. Checked mode: the pointer arguments against the helper's prototype
    /// (<c>closure.CheckHelperArguments(id, r1..r5, index)</c>). Default: before a variadic helper
    /// (bpf_trace_printk), which follows the pointers among r3-r5 only where the registry vouches for them,
    /// the method's stack block is announced, so that a string on the stack prints (checked mode did that in
    /// the prologue); no other call costs anything.
    /// </summary>
    public static void EmitHelperGuards(EmitContext c, Instruction ins)
    {
        if (c.Options.Checked)
        {
            // closure.CheckHelperArguments(id, r1, r2, r3, r4, r5, ctx, index)   (ctx: the method's r1 argument; 0 in a callback)
            // A map-specialised call never loads r1 (the map is bound at compile time): its handle stands in.
            c.Ldarg(0);
            c.LdcI4(ins.Imm);
            if (c.Shape.MapCalls[c.Index] != MapCall.None && c.Shape.Facts?[c.Index].Map is { } map) c.LdcI8((long)map.Handle);
            else c.LdReg(1);
            for (int r = 2; r <= 5; r++) c.LdReg(r);
            if (c.Shape.IsCallback) c.LdcI8(0); else c.Ldarg(1);
            c.LdcI4(c.Index);
            c.Call(s_checkHelper);
            return;
        }
        if (c.Helpers[c.Index] is not { Proto.Variadic: true }) return;
        // MemoryRegions.EnterStack(stack, stackBytes, isCallback)   (0, 0 without a stack)
        if (c.Shape.StackBytes > 0) { c.Ldloc(c.StackBase); c.Op(OpCodes.Conv_U8); }
        else c.LdcI8(0);
        c.LdcI4(c.Shape.StackBytes);
        c.LdcI4(c.Shape.IsCallback ? 1 : 0);
        c.Call(s_enterStack);
    }

    /// <summary>
    /// Checked mode, before <c>callx rd</c>: the arguments of the helper whose id is in <c>rd</c> are checked as a direct
    /// call's are (an id no helper has is the call's own fault, raised by <c>JitClosure.CallX</c>).
    /// </summary>
    public static void EmitCallXGuards(EmitContext c, Instruction ins)
    {
        if (!c.Options.Checked) return;
        // closure.CheckHelperArguments((int)rd, r1, r2, r3, r4, r5, ctx, index)
        c.Ldarg(0);
        c.LdReg(ins.Dst);
        c.Op(OpCodes.Conv_I4);
        for (int r = 1; r <= 5; r++) c.LdReg(r);
        if (c.Shape.IsCallback) c.LdcI8(0); else c.Ldarg(1);
        c.LdcI4(c.Index);
        c.Call(s_checkHelper);
    }

    static readonly MethodInfo s_faultProgram = typeof(JitClosure).GetProperty(nameof(JitClosure.Program))!.GetMethod!;

    /// <summary>
    /// Before the access of <paramref name="ins"/> through <c>r<paramref name="reg"/> + off</c>: the check.
    /// Checked mode checks every access; the default build guards an access whose base has a variable
    /// offset on some path (<see cref="Runtime.SlotFacts.VariableOffset"/>, <see cref="EmitGuard"/>).
    /// </summary>
    public static void EmitCheck(EmitContext c, Instruction ins, int reg, MemoryAccess access)
    {
        if (!c.Options.Checked)
        {
            if (c.Shape.GuardFacts is { } f && f[c.Index].VariableOffset) EmitGuard(c, ins, reg, access, f[c.Index].MemMap);
            return;
        }
        // reg + off, size
        c.LdReg(reg);
        if (ins.Offset != 0) { c.LdcI8(ins.Offset); c.Op(OpCodes.Add); }
        c.LdcI4(Size(ins));
        EmitRegionCheck(c, access, c.Shape.Facts?[c.Index].MemMap);
    }

    static int Size(Instruction ins) => ins.MemSize switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };

    /// <summary>
    /// The call that checks the address and size on the IL stack: a value the verifier proved to be of one map on
    /// every path goes to MemoryRegions.CheckMapValue(address, size, map handle, closure.Program, index, access),
    /// which accepts that map's values and nothing else; anything else to MemoryRegions.Check(address, size, stack,
    /// stackBytes, closure.Program, index, access).
    /// </summary>
    static void EmitRegionCheck(EmitContext c, MemoryAccess access, Runtime.Maps.BpfMap? map)
    {
        if (map != null) c.LdcI8((long)map.Handle);
        else
        {
            if (c.Shape.StackBytes > 0) { c.Ldloc(c.StackBase); c.Op(OpCodes.Conv_U8); }
            else c.LdcI8(0);
            c.LdcI4(c.Shape.StackBytes);
        }
        c.Ldarg(0);
        c.Call(s_faultProgram);
        c.LdcI4(c.Index);
        c.LdcI4((int)access);
        c.Call(map != null ? s_checkMapValue : s_check);
    }

    /// <summary>
    /// The default build's guard for a variable-offset access (docs/jit.md, "Runtime guards"): the verifier
    /// kept it in its region by range reasoning, which a wrong fact would break. A proven map value goes to
    /// <see cref="MemoryRegions.CheckMapValue"/> (that map's live values only). Anything else first takes one
    /// unsigned compare against this method's frames, [stack, stack + frames * 512), where every stack pointer
    /// of the program points; only a miss calls <see cref="MemoryRegions.Check"/> (registered blocks, map values,
    /// records), which raises <see cref="BpfCheckedModeException"/> (a <see cref="BpfFaultException"/>) when the
    /// access is in no region.
    /// </summary>
    static void EmitGuard(EmitContext c, Instruction ins, int reg, MemoryAccess access, Runtime.Maps.BpfMap? map)
    {
        int size = Size(ins);
        // guard = reg + off
        c.LdReg(reg);
        if (ins.Offset != 0) { c.LdcI8(ins.Offset); c.Op(OpCodes.Add); }
        c.Stloc(c.GuardAddress);
        if (map != null)
        {
            c.Note($"guard: variable offset into a value of map {map.Name}");
            c.Ldloc(c.GuardAddress);
            c.LdcI4(size);
            EmitRegionCheck(c, access, map);
            return;
        }
        c.Note("guard: variable offset, checked against the stack frames, then every region");
        var ok = c.DefineLabel();
        if (c.Shape.StackBytes >= size)
        {
            // if (guard - stack <= stackBytes - size) goto ok   (unsigned: below the block wraps to a large value)
            c.Ldloc(c.GuardAddress);
            c.Ldloc(c.StackBase);
            c.Op(OpCodes.Conv_U8);
            c.Op(OpCodes.Sub);
            c.LdcI8(c.Shape.StackBytes - size);
            c.Branch(OpCodes.Ble_Un, ok);
        }
        c.Ldloc(c.GuardAddress);
        c.LdcI4(size);
        EmitRegionCheck(c, access, null);
        c.MarkLabel(ok);
    }
}
