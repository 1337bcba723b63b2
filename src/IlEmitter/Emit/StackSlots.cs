using BpfJit.Frontend;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Stack slots held in IL locals (docs/jit.md, "Optimisations"): when the only uses of r10 are loads and
/// stores at constant offsets that each fall inside one 8-byte slot of the frame, no pointer to the stack
/// ever exists outside those instructions (r10 is never copied, compared, passed or added to), so the
/// stack is private to them and each slot it touches can be a <c>ulong</c> local. RyuJIT then keeps the
/// slot in a register, and the program needs no stack block: a store followed by loads of the same slot
/// costs register moves instead of a round trip through memory. Narrower accesses read or replace the
/// slot's bytes in place (little-endian, as memory would). Exact: the frame's bytes outside those slots
/// are never read, and a slot starts at zero, what the zeroed stack would hold (a verified program that
/// never reads before writing cannot tell).
/// </summary>
internal static class StackSlots
{
    /// <summary>The most slots kept in locals: past that the register allocator spills them anyway.</summary>
    public const int MaxSlots = 8;

    /// <summary>
    /// The frame offsets (multiples of 8, negative) of the slots to hold in locals, in ascending order, or
    /// null when some reachable use of r10 is not a load or store at a constant offset within one slot of a
    /// <paramref name="frameSize"/>-byte frame (or more than <see cref="MaxSlots"/> slots are touched).
    /// </summary>
    public static int[]? Find(Instruction[] program, bool[] reachable, int frameSize, IEnumerable<StoreMerge.Group> merged)
    {
        const int fp = 10;
        var slots = new List<int>();
        for (int i = 0; i < program.Length; i++)
        {
            var ins = program[i];
            if (ins.IsLdImm64) { i++; continue; }
            if (!reachable[i]) continue;
            int? offset = ins.Class switch
            {
                InstructionClass.Ldx when ins.Src == fp && ins.Dst != fp && ins.MemMode is MemMode.Mem or MemMode.MemSx => ins.Offset,
                InstructionClass.St when ins.Dst == fp && ins.MemMode == MemMode.Mem => ins.Offset,
                InstructionClass.Stx when ins.Dst == fp && ins.Src != fp && ins.MemMode == MemMode.Mem => ins.Offset,
                _ => null,
            };
            if (offset is not int off)
            {
                // r10 copied, compared, passed or written: the stack escapes these instructions
                if (ProgramShape.ReadsR10(ins) || (ins.Class is InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx && ins.Dst == fp)) return null;
                continue;
            }
            if (!Add(slots, off, Size(ins.MemSize), frameSize)) return null;
        }
        // A merged group of byte stores is written as one wider store: it must fit one slot too.
        foreach (var g in merged)
            if (!Add(slots, g.Offset, g.Width, frameSize)) return null;
        slots.Sort();
        return [.. slots];
    }

    /// <summary>Adds the slot an access of <paramref name="size"/> bytes at <paramref name="off"/> touches; false when it is not within one slot of the frame.</summary>
    static bool Add(List<int> slots, int off, int size, int frameSize)
    {
        if (off < -frameSize || off + size > 0 || (off & 7) + size > 8) return false;
        int slot = off & ~7;
        if (slots.Contains(slot)) return true;
        if (slots.Count == MaxSlots) return false;
        slots.Add(slot);
        return true;
    }

    /// <summary>Bytes an access of <paramref name="size"/> touches.</summary>
    public static int Size(MemSize size) => size switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };

    /// <summary>The name of the local holding the slot at <paramref name="slot"/> (r10 - 8 is <c>fp_8</c>).</summary>
    public static string LocalName(int slot) => $"fp_{-slot}";
}
