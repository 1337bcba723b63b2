using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>What one executed instruction did to the stack, for precision backtracking (the kernel's jmp_history flags).</summary>
[Flags]
internal enum HistFlags : byte
{
    None = 0,
    /// <summary>A load filled its register from a spilled register at (SlotFrame, Spi).</summary>
    StackFill = 1,
    /// <summary>A store at a fixed offset wrote (SlotFrame, Spi): a spill of <see cref="HistEntry.SpillReg"/>, or of nothing when it is -1.</summary>
    StackStore = 2,
    /// <summary>A conditional jump compared a scalar linked by id to a spilled slot or a register of another frame (its refinement reached them).</summary>
    LinkedElsewhere = 4,
    /// <summary>The exit of a callback body (it returns to the helper call, r0 stays in the callback).</summary>
    CallbackExit = 8,
}

/// <summary>One executed instruction of a path, in the frame it ran in.</summary>
/// <param name="Insn">The instruction.</param>
/// <param name="Frame">The frame it ran in.</param>
/// <param name="Flags">Its stack and linked-register effects.</param>
/// <param name="SlotFrame">The frame of the stack slot it filled from or stored to.</param>
/// <param name="Spi">That slot.</param>
/// <param name="SpillReg">The register it spilled, or -1.</param>
/// <param name="LinkedRegs">For a conditional jump: registers of its frame linked by id to the registers it compares.</param>
internal record struct HistEntry(int Insn, byte Frame, HistFlags Flags = HistFlags.None, byte SlotFrame = 0, byte Spi = 0, sbyte SpillReg = -1, ushort LinkedRegs = 0);

/// <summary>
/// The registers and stack slots, per frame, whose exact value still matters while precision
/// backtracking walks a path backwards (the kernel's backtrack_state).
/// </summary>
internal sealed class BacktrackSet
{
    public readonly ushort[] Regs = new ushort[BpfAbi.MaxCallFrames];
    public readonly ulong[] Slots = new ulong[BpfAbi.MaxCallFrames];

    public bool Empty
    {
        get
        {
            for (int f = 0; f < BpfAbi.MaxCallFrames; f++) if (Regs[f] != 0 || Slots[f] != 0) return false;
            return true;
        }
    }

    public bool Reg(int f, int r) => (Regs[f] & (1 << r)) != 0;
    public void SetReg(int f, int r) => Regs[f] |= (ushort)(1 << r);
    public void ClearReg(int f, int r) => Regs[f] &= (ushort)~(1 << r);
    public bool Slot(int f, int spi) => (Slots[f] & (1UL << spi)) != 0;
    public void SetSlot(int f, int spi) => Slots[f] |= 1UL << spi;
    public void ClearSlot(int f, int spi) => Slots[f] &= ~(1UL << spi);
}
