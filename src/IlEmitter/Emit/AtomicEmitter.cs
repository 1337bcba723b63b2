using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime.Checked;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// STX|ATOMIC (32 and 64 bits): add, or, and, xor with and without fetch, xchg and cmpxchg, as
/// calls to <see cref="JitAtomics"/> (Interlocked, kept out of line: see there why) with the native
/// address <c>rd + off</c>. Fetch forms and xchg write the old value to rs, cmpxchg to r0;
/// 32-bit results are zero-extended.
/// </summary>
internal static class AtomicEmitter
{
    static MethodInfo M(string name) => typeof(JitAtomics).GetMethod(name) ?? throw new MissingMethodException(nameof(JitAtomics), name);

    static readonly MethodInfo s_add64 = M(nameof(JitAtomics.Add64)), s_add32 = M(nameof(JitAtomics.Add32));
    static readonly MethodInfo s_or64 = M(nameof(JitAtomics.Or64)), s_or32 = M(nameof(JitAtomics.Or32));
    static readonly MethodInfo s_and64 = M(nameof(JitAtomics.And64)), s_and32 = M(nameof(JitAtomics.And32));
    static readonly MethodInfo s_xor64 = M(nameof(JitAtomics.Xor64)), s_xor32 = M(nameof(JitAtomics.Xor32));
    static readonly MethodInfo s_xchg64 = M(nameof(JitAtomics.Xchg64)), s_xchg32 = M(nameof(JitAtomics.Xchg32));
    static readonly MethodInfo s_cmpxchg64 = M(nameof(JitAtomics.CmpXchg64)), s_cmpxchg32 = M(nameof(JitAtomics.CmpXchg32));

    public static void Emit(EmitContext c, Instruction ins)
    {
        bool is64 = ins.MemSize == MemSize.DW;
        int d = ins.Dst, s = ins.Src;
        var op = (AtomicOp)ins.Imm;
        CheckedMemory.EmitCheck(c, ins, d, MemoryAccess.Atomic);
        if (op == AtomicOp.CmpXchg)
        {
            // r0 = JitAtomics.CmpXchg64(rd + off, rs, r0)   (32-bit: on the low halves, zero-extended)
            Address(c, d, ins.Offset);
            Source(c, s, is64);
            Source(c, 0, is64);
            c.Call(is64 ? s_cmpxchg64 : s_cmpxchg32);
            StoreOld(c, 0, is64, store: true);
            return;
        }
        // old = JitAtomics.Add64/Or64/And64/Xor64/Xchg64(rd + off, rs); fetch forms and xchg: rs = old
        var method = (op, is64) switch
        {
            (AtomicOp.Add or AtomicOp.FetchAdd, true) => s_add64,
            (AtomicOp.Add or AtomicOp.FetchAdd, false) => s_add32,
            (AtomicOp.Or or AtomicOp.FetchOr, true) => s_or64,
            (AtomicOp.Or or AtomicOp.FetchOr, false) => s_or32,
            (AtomicOp.And or AtomicOp.FetchAnd, true) => s_and64,
            (AtomicOp.And or AtomicOp.FetchAnd, false) => s_and32,
            (AtomicOp.Xor or AtomicOp.FetchXor, true) => s_xor64,
            (AtomicOp.Xor or AtomicOp.FetchXor, false) => s_xor32,
            (AtomicOp.Xchg, true) => s_xchg64,
            (AtomicOp.Xchg, false) => s_xchg32,
            _ => throw c.Error($"unsupported atomic operation 0x{ins.Imm:x}"),
        };
        Address(c, d, ins.Offset);
        Source(c, s, is64);
        c.Call(method);
        StoreOld(c, s, is64, store: (ins.Imm & 1) != 0);
    }

    /// <summary>Pushes rd + off as a 64-bit integer (the helpers take the address as ulong).</summary>
    static void Address(EmitContext c, int reg, short offset)
    {
        c.LdReg(reg);
        if (offset != 0) { c.LdcI8(offset); c.Op(OpCodes.Add); }
    }

    static void Source(EmitContext c, int reg, bool is64)
    {
        if (is64) c.LdReg(reg); else c.LdReg32(reg);
    }

    static void StoreOld(EmitContext c, int reg, bool is64, bool store)
    {
        if (!store) { c.Op(OpCodes.Pop); return; }
        if (!is64) c.Op(OpCodes.Conv_U8);
        c.StReg(reg);
    }
}
