using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>What one stack byte holds (the kernel's STACK_* slot types; printed as <c>?</c>, <c>m</c>, <c>0</c>, <c>r</c>).</summary>
internal enum SlotKind : byte
{
    /// <summary>Never written.</summary>
    Invalid,
    /// <summary>Some unknown data.</summary>
    Misc,
    /// <summary>Known zero.</summary>
    Zero,
    /// <summary>Part of a spilled register.</summary>
    Spill,
    /// <summary>Part of an open-coded iterator (the kernel's STACK_ITER); its state is the slot's spilled register.</summary>
    Iter,
    /// <summary>Part of a dynptr (the kernel's STACK_DYNPTR): both 8-byte slots of it, all bytes; its state is the slot's spilled register.</summary>
    Dynptr,
}

/// <summary>
/// A frame's stack as the kernel models it: 8-byte slots, each with eight byte kinds and the
/// register state spilled there. Slot <c>spi</c> covers fp-8*(spi+1) .. fp-8*spi-1; byte kind
/// <c>k</c> of a slot is the byte at fp-8*spi-1-k (kind 7 is the lowest address).
/// </summary>
internal sealed class StackState
{
    public const int Slots = BpfAbi.StackSize / 8;

    /// <summary>Byte kinds of the allocated part, 8 per slot; bytes past it are <see cref="SlotKind.Invalid"/>.</summary>
    public SlotKind[] Kinds = s_noKinds;
    /// <summary>The register spilled in each allocated slot.</summary>
    public RegState[] Spilled = s_noSpilled;

    // Empty arrays of this assembly's own: Array.Empty over these element types (what `= []` gives) is framework code whose
    // static constructor RyuJIT compiles at a process's first program (docs/perf.md, "Cold start").
    static readonly SlotKind[] s_noKinds = new SlotKind[0];
    static readonly RegState[] s_noSpilled = new RegState[0];
    /// <summary>Bytes of stack in use (the deepest access, positive, a multiple of 8).</summary>
    public int Allocated;

    public StackState Clone() => new()
    {
        Allocated = Allocated,
        Kinds = Allocated == 0 ? [] : (SlotKind[])Kinds.Clone(),
        Spilled = Allocated == 0 ? [] : (RegState[])Spilled.Clone(),
    };

    public SlotKind Kind(int spi, int k)
    {
        int i = spi * 8 + k;
        return i < Kinds.Length ? Kinds[i] : SlotKind.Invalid;
    }

    public void SetKind(int spi, int k, SlotKind kind) => Kinds[spi * 8 + k] = kind;

    /// <summary>True when the slot starts with a spilled register (its kind 7 is Spill).</summary>
    public bool IsSpilled(int spi) => Kind(spi, 7) == SlotKind.Spill;

    /// <summary>True when all eight bytes belong to one iterator.</summary>
    public bool IsIter(int spi)
    {
        for (int k = 0; k < 8; k++) if (Kind(spi, k) != SlotKind.Iter) return false;
        return true;
    }

    /// <summary>True when the slot is half of a dynptr (a dynptr's slots are never partly so).</summary>
    public bool IsDynptr(int spi) => Kind(spi, 0) == SlotKind.Dynptr;

    /// <summary>True when all eight bytes hold one spilled register.</summary>
    public bool IsFullSpill(int spi)
    {
        for (int k = 0; k < 8; k++) if (Kind(spi, k) != SlotKind.Spill) return false;
        return true;
    }

    /// <summary>Makes room for <paramref name="bytes"/> bytes below the frame pointer (grow_stack_state).</summary>
    public void Grow(int bytes)
    {
        if (bytes <= Allocated) return;
        Allocated = (bytes + 7) & ~7;
        Array.Resize(ref Kinds, Allocated);
        Array.Resize(ref Spilled, Allocated / 8);
    }

    /// <summary>The kernel's slot print: <c>fp-8=mmmmmmmm</c> or the spilled register.</summary>
    public string SlotString(int spi)
    {
        var c = new char[8];
        for (int k = 0; k < 8; k++)
            c[k] = Kinds[spi * 8 + k] switch { SlotKind.Misc => 'm', SlotKind.Zero => '0', SlotKind.Spill => 'r', SlotKind.Iter => 'i', SlotKind.Dynptr => 'd', _ => '?' };
        return new string(c);
    }
}
