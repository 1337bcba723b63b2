using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Loads the verifier proved to read the program's context (<c>struct bpf_sk_lookup</c> or <c>struct sk_reuseport_md</c>
/// at r1): one direct read at a constant offset of the context block, with the kernel's narrow-load semantics decided
/// here, at compile time (each type's <see cref="Runtime.ProgramTypes.IProgramTypeDefinition.FoldContextLoad"/>). SK_LOOKUP (spec 1.2,
/// <c>sk_lookup_convert_ctx_access</c>): family, protocol and local_port
/// are 16-bit fields (a 2-byte load at +2 reads the field itself, bytes 2-3 read 0), remote_port is
/// 16 bits even when read with 4 bytes, the padding reads 0. No call, no run-time check.
/// </summary>
internal static class CtxLoadEmitter
{
    public static void Emit(EmitContext c, Instruction ins, SlotFacts fact, ProgramType type)
    {
        int size = ins.MemSize switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };
        bool signed = ins.MemMode == MemMode.MemSx;
        // Each type's context block is laid out as its UAPI structure; its fold says which bytes a load reads.
        var (offset, width) = Runtime.ProgramTypes.ProgramTypeRegistry.Get(type).FoldContextLoad(fact.CtxOffset, size);
        if (width == 0)
        {
            // rd = 0   (the kernel's answer for this narrow load, known now)
            c.Note($"ctx load {fact.CtxField} +{fact.CtxOffset} size {size}: always 0, folded");
            c.LdcI8(0);
            c.StReg(ins.Dst);
            return;
        }
        c.Note(offset == fact.CtxOffset && width == size
            ? $"ctx load {fact.CtxField}"
            : $"ctx load {fact.CtxField}: {size}-byte load at {fact.CtxOffset} reads {width} bytes at {offset} (kernel narrow-load rule)");
        // rd = *(uN *)(ctx + offset)   (sign-extended for LDSX when the read is the whole access)
        c.LdReg(ins.Src);
        if (offset != 0)
        {
            c.LdcI8(offset);
            c.Op(OpCodes.Add);
        }
        c.Op(OpCodes.Conv_U);
        bool sx = signed && width == size;
        switch (width, sx)
        {
            case (1, false): c.Op(OpCodes.Ldind_U1); c.Op(OpCodes.Conv_U8); break;
            case (2, false): c.Op(OpCodes.Ldind_U2); c.Op(OpCodes.Conv_U8); break;
            case (4, false): c.Op(OpCodes.Ldind_U4); c.Op(OpCodes.Conv_U8); break;
            case (1, true): c.Op(OpCodes.Ldind_I1); c.Op(OpCodes.Conv_I8); break;
            case (2, true): c.Op(OpCodes.Ldind_I2); c.Op(OpCodes.Conv_I8); break;
            case (4, true): c.Op(OpCodes.Ldind_I4); c.Op(OpCodes.Conv_I8); break;
            default: c.Op(OpCodes.Ldind_I8); break;
        }
        c.StReg(ins.Dst);
    }
}
