using System.Reflection.Emit;
using BpfJit.Frontend;
using BpfJit.Runtime.Checked;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Loads (LDX, with the sign-extending MEMSX forms), stores (ST, STX) and ld_imm64. Addresses are
/// native pointers: <c>(void*)(reg + off)</c>, accessed with <c>unaligned.</c> <c>ldind</c>/<c>stind</c>
/// since eBPF allows any alignment. Nothing is bounds-checked: only verified or trusted programs run.
/// </summary>
internal static class MemoryEmitter
{
    public static void EmitLoad(EmitContext c, Instruction ins)
    {
        bool signed = ins.MemMode == MemMode.MemSx;
        CheckedMemory.EmitCheck(c, ins, ins.Src, MemoryAccess.Load);
        // rd = *(u32 *)(rs + off)   (u8/u16/u64 alike; s8/s16/s32 sign-extend)
        Address(c, ins.Src, ins.Offset);
        if (ins.MemSize != MemSize.B) c.Unaligned();
        switch (ins.MemSize, signed)
        {
            case (MemSize.B, false): c.Op(OpCodes.Ldind_U1); c.Op(OpCodes.Conv_U8); break;
            case (MemSize.H, false): c.Op(OpCodes.Ldind_U2); c.Op(OpCodes.Conv_U8); break;
            case (MemSize.W, false): c.Op(OpCodes.Ldind_U4); c.Op(OpCodes.Conv_U8); break;
            case (MemSize.DW, false): c.Op(OpCodes.Ldind_I8); break;
            case (MemSize.B, true): c.Op(OpCodes.Ldind_I1); c.Op(OpCodes.Conv_I8); break;
            case (MemSize.H, true): c.Op(OpCodes.Ldind_I2); c.Op(OpCodes.Conv_I8); break;
            case (MemSize.W, true): c.Op(OpCodes.Ldind_I4); c.Op(OpCodes.Conv_I8); break;
            default: throw c.Error("unsupported load size");
        }
        c.StReg(ins.Dst);
    }

    public static void EmitStore(EmitContext c, Instruction ins)
    {
        CheckedMemory.EmitCheck(c, ins, ins.Dst, MemoryAccess.Store);
        // *(u32 *)(rd + off) = rs   (ST: = imm; u8/u16/u64 alike)
        Address(c, ins.Dst, ins.Offset);
        bool fromReg = ins.Class == InstructionClass.Stx;
        if (ins.MemSize == MemSize.DW)
        {
            if (fromReg) c.LdReg(ins.Src); else c.LdcI8(ins.Imm);
        }
        else
        {
            if (fromReg) c.LdReg32(ins.Src); else c.LdcI4(ins.Imm);
        }
        if (ins.MemSize != MemSize.B) c.Unaligned();
        c.Op(ins.MemSize switch
        {
            MemSize.B => OpCodes.Stind_I1,
            MemSize.H => OpCodes.Stind_I2,
            MemSize.W => OpCodes.Stind_I4,
            _ => OpCodes.Stind_I8,
        });
    }

    /// <summary>A group of byte stores merged into one (<see cref="StoreMerge"/>): <c>*(uW *)(r10 + off) = rX</c>.</summary>
    public static void EmitMergedStore(EmitContext c, StoreMerge.Group g)
    {
        string size = g.Width switch { 2 => "u16", 4 => "u32", _ => "u64" };
        c.Note($"byte stores at slots {string.Join(", ", g.Slots)} write the low {g.Width} bytes of r{g.Reg}: merged into *({size} *)(r10 {(g.Offset < 0 ? "-" : "+")} {Math.Abs((int)g.Offset)}) = r{g.Reg}");
        // *(uW *)(r10 + off) = rX
        Address(c, 10, g.Offset);
        if (g.Width == 8) c.LdReg(g.Reg); else c.LdReg32(g.Reg);
        c.Unaligned();
        c.Op(g.Width switch { 2 => OpCodes.Stind_I2, 4 => OpCodes.Stind_I4, _ => OpCodes.Stind_I8 });
    }

    public static void EmitLdImm64(EmitContext c, int index, Instruction ins)
    {
        // rd = imm64
        c.LdcI8((long)ins.Imm64(c.Program[index + 1]));
        c.StReg(ins.Dst);
    }

    /// <summary>Pushes the native address <c>reg + off</c>.</summary>
    public static void Address(EmitContext c, int reg, short offset)
    {
        c.LdReg(reg);
        if (offset != 0)
        {
            c.LdcI8(offset);
            c.Op(OpCodes.Add);
        }
        c.Op(OpCodes.Conv_U);
    }
}
