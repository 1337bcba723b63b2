using System.Reflection;
using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// STX|ATOMIC (32 and 64 bits): add, or, and, xor with and without fetch, xchg and cmpxchg, as
/// direct calls to <see cref="Interlocked"/> on <c>ref *(T*)(rd + off)</c> (the IL C# itself emits
/// for that expression). Xor, which <see cref="Interlocked"/> lacks, calls the compare-exchange loop
/// in <see cref="Semantics"/> that the interpreter uses too.
/// </summary>
internal static class AtomicEmitter
{
    static readonly MethodInfo s_add64 = Interlocked64(nameof(Interlocked.Add));
    static readonly MethodInfo s_or64 = Interlocked64(nameof(Interlocked.Or));
    static readonly MethodInfo s_and64 = Interlocked64(nameof(Interlocked.And));
    static readonly MethodInfo s_xchg64 = Interlocked64(nameof(Interlocked.Exchange));
    static readonly MethodInfo s_cmpxchg64 = Interlocked64(nameof(Interlocked.CompareExchange), 3);
    static readonly MethodInfo s_add32 = Interlocked32(nameof(Interlocked.Add));
    static readonly MethodInfo s_or32 = Interlocked32(nameof(Interlocked.Or));
    static readonly MethodInfo s_and32 = Interlocked32(nameof(Interlocked.And));
    static readonly MethodInfo s_xchg32 = Interlocked32(nameof(Interlocked.Exchange));
    static readonly MethodInfo s_cmpxchg32 = Interlocked32(nameof(Interlocked.CompareExchange), 3);
    static readonly MethodInfo s_xor64 = typeof(Semantics).GetMethod(nameof(Semantics.AtomicXor64))!;
    static readonly MethodInfo s_xor32 = typeof(Semantics).GetMethod(nameof(Semantics.AtomicXor32))!;

    static MethodInfo Interlocked64(string name, int arity = 2) => Find(name, typeof(ulong), arity);
    static MethodInfo Interlocked32(string name, int arity = 2) => Find(name, typeof(uint), arity);

    static MethodInfo Find(string name, Type t, int arity)
    {
        Type[] ps = arity == 3 ? [t.MakeByRefType(), t, t] : [t.MakeByRefType(), t];
        return typeof(Interlocked).GetMethod(name, ps) ?? throw new MissingMethodException(nameof(Interlocked), name);
    }

    public static void Emit(EmitContext c, Instruction ins)
    {
        bool is64 = ins.MemSize == MemSize.DW;
        int d = ins.Dst, s = ins.Src;
        var op = (AtomicOp)ins.Imm;
        bool fetch = (ins.Imm & 1) != 0;
        switch (op)
        {
            case AtomicOp.Add or AtomicOp.FetchAdd:
                // Interlocked.Add(ref *(T*)(rd + off), (T)rs)   (fetch: rs = that result - rs, the old value)
                MemoryEmitter.Address(c, d, ins.Offset);
                Source(c, s, is64);
                c.Call(is64 ? s_add64 : s_add32);
                if (!fetch) { c.Op(OpCodes.Pop); return; }
                Source(c, s, is64);
                c.Op(OpCodes.Sub);
                if (!is64) c.Op(OpCodes.Conv_U8);
                c.StReg(s);
                return;

            case AtomicOp.Or or AtomicOp.FetchOr or AtomicOp.And or AtomicOp.FetchAnd or AtomicOp.Xchg:
                // old = Interlocked.Or/And/Exchange(ref *(T*)(rd + off), (T)rs); fetch forms: rs = old
                MemoryEmitter.Address(c, d, ins.Offset);
                Source(c, s, is64);
                c.Call((op, is64) switch
                {
                    (AtomicOp.Or or AtomicOp.FetchOr, true) => s_or64,
                    (AtomicOp.Or or AtomicOp.FetchOr, false) => s_or32,
                    (AtomicOp.And or AtomicOp.FetchAnd, true) => s_and64,
                    (AtomicOp.And or AtomicOp.FetchAnd, false) => s_and32,
                    (_, true) => s_xchg64,
                    _ => s_xchg32,
                });
                StoreOld(c, s, is64, fetch);
                return;

            case AtomicOp.Xor or AtomicOp.FetchXor:
                // old = Semantics.AtomicXor64(rd + off, rs); fetch: rs = old
                c.LdReg(d);
                if (ins.Offset != 0) { c.LdcI8(ins.Offset); c.Op(OpCodes.Add); }
                Source(c, s, is64);
                c.Call(is64 ? s_xor64 : s_xor32);
                StoreOld(c, s, is64, fetch);
                return;

            case AtomicOp.CmpXchg:
                // r0 = Interlocked.CompareExchange(ref *(T*)(rd + off), (T)rs, (T)r0)
                MemoryEmitter.Address(c, d, ins.Offset);
                Source(c, s, is64);
                Source(c, 0, is64);
                c.Call(is64 ? s_cmpxchg64 : s_cmpxchg32);
                StoreOld(c, 0, is64, true);
                return;

            default:
                throw c.Error($"unsupported atomic operation 0x{ins.Imm:x}");
        }
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
