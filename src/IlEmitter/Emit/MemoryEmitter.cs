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
        if (ins.Src == 10 && c.Shape.LocalSlots != null) { EmitSlotLoad(c, ins, signed); return; }
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

    static readonly System.Reflection.MethodInfo s_probe = typeof(Runtime.KernelProbe).GetMethod(nameof(Runtime.KernelProbe.Load))!;
    static readonly System.Reflection.MethodInfo s_probeSigned = typeof(Runtime.KernelProbe).GetMethod(nameof(Runtime.KernelProbe.LoadSigned))!;

    /// <summary>
    /// A load the verifier proved reads a kernel object (the kernel's BPF_PROBE_MEM): through <see cref="Runtime.KernelProbe"/>,
    /// which reads the object's image or 0 and touches no other memory, so it needs no checked-mode guard.
    /// </summary>
    public static void EmitProbeLoad(EmitContext c, Instruction ins)
    {
        int size = ins.MemSize switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };
        // rd = KernelProbe.Load(rs + off, size)   (MEMSX: KernelProbe.LoadSigned)
        c.LdReg(ins.Src);
        if (ins.Offset != 0)
        {
            c.LdcI8(ins.Offset);
            c.Op(OpCodes.Add);
        }
        c.LdcI4(size);
        c.Call(ins.MemMode == MemMode.MemSx ? s_probeSigned : s_probe);
        c.StReg(ins.Dst);
    }

    public static void EmitStore(EmitContext c, Instruction ins)
    {
        if (ins.Dst == 10 && c.Shape.LocalSlots != null) { EmitSlotStore(c, ins); return; }
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

    /// <summary>A load from a stack slot held in a local (<see cref="StackSlots"/>): the slot's bytes at the offset.</summary>
    static void EmitSlotLoad(EmitContext c, Instruction ins, bool signed)
    {
        int slot = ins.Offset & ~7, shift = (ins.Offset & 7) * 8;
        c.Note($"stack slot r10 {Signed(slot)} held in local {StackSlots.LocalName(slot)}");
        // rd = (u32)(fp_8 >> shift)   (u8/u16/u64 alike; s8/s16/s32 sign-extend)
        c.Ldloc(c.SlotLocal(slot));
        if (shift != 0) { c.LdcI4(shift); c.Op(OpCodes.Shr_Un); }
        switch (ins.MemSize, signed)
        {
            case (MemSize.B, false): c.Op(OpCodes.Conv_U1); c.Op(OpCodes.Conv_U8); break;
            case (MemSize.H, false): c.Op(OpCodes.Conv_U2); c.Op(OpCodes.Conv_U8); break;
            case (MemSize.W, false): c.Op(OpCodes.Conv_U4); c.Op(OpCodes.Conv_U8); break;
            case (MemSize.DW, false): break;
            case (MemSize.B, true): c.Op(OpCodes.Conv_I1); c.Op(OpCodes.Conv_I8); break;
            case (MemSize.H, true): c.Op(OpCodes.Conv_I2); c.Op(OpCodes.Conv_I8); break;
            case (MemSize.W, true): c.Op(OpCodes.Conv_I4); c.Op(OpCodes.Conv_I8); break;
            default: throw c.Error("unsupported load size");
        }
        c.StReg(ins.Dst);
    }

    /// <summary>A store to a stack slot held in a local (<see cref="StackSlots"/>): the bytes at the offset replaced.</summary>
    static void EmitSlotStore(EmitContext c, Instruction ins) =>
        EmitSlotStore(c, ins.Offset, StackSlots.Size(ins.MemSize), ins.Class == InstructionClass.Stx ? ins.Src : -1, ins.Imm);

    /// <summary>
    /// <c>*(uW *)(r10 + off) = r<paramref name="src"/></c> (<paramref name="src"/> -1: the immediate) into the local
    /// holding the slot.
    /// </summary>
    static void EmitSlotStore(EmitContext c, int offset, int size, int src, int imm)
    {
        int slot = offset & ~7, shift = (offset & 7) * 8;
        bool fromReg = src >= 0;
        c.Note($"stack slot r10 {Signed(slot)} held in local {StackSlots.LocalName(slot)}");
        if (size == 8)
        {
            // fp_8 = rs   (ST: = imm, sign-extended as the 64-bit store writes it)
            if (fromReg) c.LdReg(src); else c.LdcI8(imm);
            c.Stloc(c.SlotLocal(slot));
            return;
        }
        ulong mask = (1UL << (size * 8)) - 1;
        // fp_8 = (fp_8 & ~(mask << shift)) | ((rs & mask) << shift)   (ST: the constant, shifted)
        c.Ldloc(c.SlotLocal(slot));
        c.LdcI8((long)~(mask << shift));
        c.Op(OpCodes.And);
        if (fromReg)
        {
            c.LdReg(src);
            c.LdcI8((long)mask);
            c.Op(OpCodes.And);
            if (shift != 0) { c.LdcI4(shift); c.Op(OpCodes.Shl); }
        }
        else c.LdcI8((long)(((ulong)(long)imm & mask) << shift));
        c.Op(OpCodes.Or);
        c.Stloc(c.SlotLocal(slot));
    }

    static string Signed(int offset) => offset < 0 ? $"- {-offset}" : $"+ {offset}";

    /// <summary>A group of byte stores merged into one (<see cref="StoreMerge"/>): <c>*(uW *)(r10 + off) = rX</c>.</summary>
    public static void EmitMergedStore(EmitContext c, StoreMerge.Group g)
    {
        string size = g.Width switch { 2 => "u16", 4 => "u32", _ => "u64" };
        c.Note($"byte stores at slots {string.Join(", ", g.Slots)} write the low {g.Width} bytes of r{g.Reg}: merged into *({size} *)(r10 {(g.Offset < 0 ? "-" : "+")} {Math.Abs((int)g.Offset)}) = r{g.Reg}");
        if (c.Shape.LocalSlots != null) { EmitSlotStore(c, g.Offset, g.Width, g.Reg, 0); return; }
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
