namespace BpfJit.Verifier;

/// <summary>
/// The abstract value of one register (the kernel's <c>struct bpf_reg_state</c>): a type, a fixed
/// offset for pointers, a tnum of the variable part, signed and unsigned 64- and 32-bit bounds,
/// an id linking copies (so a NULL check refines all of them) and the reference it holds.
/// For scalars the tnum and bounds describe the value; for pointers they describe the variable offset.
/// </summary>
internal enum IterState : byte
{
    /// <summary>Not an iterator.</summary>
    None,
    /// <summary>next() may return another element.</summary>
    Active,
    /// <summary>next() returned NULL: it returns NULL again.</summary>
    Drained,
}

internal struct RegState
{
    public RegType Type;
    /// <summary>Fixed part of a pointer's offset.</summary>
    public int Off;
    public Tnum VarOff;
    public long Smin, Smax;
    public ulong Umin, Umax;
    public int S32Min, S32Max;
    public uint U32Min, U32Max;
    /// <summary>Copies of one value share an id (0 = none).</summary>
    public int Id;
    /// <summary>The acquired reference this pointer carries (0 = none).</summary>
    public int RefObjId;
    /// <summary>Map index for map pointers and map values; memory size for PtrToMem; subprogram for PtrToFunc.</summary>
    public int Aux;
    /// <summary>The frame a stack pointer points into.</summary>
    public int Frame;
    /// <summary>For an iterator's stack slot (<see cref="SlotKind.Iter"/>): active or drained (the kernel's iter.state).</summary>
    public IterState Iter;
    /// <summary>For an iterator's stack slot: next() calls that returned an element on this path (the kernel's iter.depth).</summary>
    public int IterDepth;
    /// <summary>For a dynptr's stack slot (<see cref="SlotKind.Dynptr"/>): the dynptr's kind (the kernel's dynptr.type).</summary>
    public DynptrKind Dynptr;
    /// <summary>For a dynptr's stack slot: the upper of its two slots, where the stack pointer to it points (dynptr.first_slot).</summary>
    public bool DynptrFirst;
    /// <summary>
    /// For a slice of a dynptr (bpf_dynptr_data's result): the <see cref="Id"/> of the dynptr's stack slots (the kernel's
    /// dynptr_id), so that destroying the dynptr invalidates the slice.
    /// </summary>
    public int DynptrId;
    /// <summary>For a scalar: its exact value matters to some path below this state (the kernel's precise mark).</summary>
    public bool Precise;

    public static readonly RegState NotInit = default;

    public static RegState Unknown()
    {
        var r = new RegState { Type = RegType.Scalar };
        r.MarkUnbounded();
        return r;
    }

    public static RegState Known(ulong value)
    {
        var r = new RegState { Type = RegType.Scalar };
        r.MarkKnown(value);
        return r;
    }

    public static RegState Pointer(RegType type, int off = 0, int aux = 0)
    {
        var r = new RegState { Type = type, Off = off, Aux = aux };
        r.MarkKnown(0);
        return r;
    }

    public readonly bool IsScalar => Type == RegType.Scalar;
    public readonly bool IsPointer => Type is not (RegType.Scalar or RegType.NotInit);
    public readonly bool IsConst => Type == RegType.Scalar && VarOff.IsConst;
    public readonly bool IsNull => IsConst && VarOff.Value == 0;
    public readonly bool IsNullable => RegTypeNames.IsNullable(Type);

    public void MarkKnown(ulong v)
    {
        VarOff = Tnum.Const(v);
        Smin = Smax = (long)v;
        Umin = Umax = v;
        S32Min = S32Max = (int)(uint)v;
        U32Min = U32Max = (uint)v;
    }

    public void MarkKnown32(uint v)
    {
        VarOff = VarOff.WithConstSubreg(v);
        S32Min = S32Max = (int)v;
        U32Min = U32Max = v;
    }

    public void MarkUnbounded()
    {
        VarOff = Tnum.Unknown;
        Unbound64();
        Unbound32();
    }

    public void Unbound64()
    {
        Smin = long.MinValue; Smax = long.MaxValue;
        Umin = 0; Umax = ulong.MaxValue;
    }

    public void Unbound32()
    {
        S32Min = int.MinValue; S32Max = int.MaxValue;
        U32Min = 0; U32Max = uint.MaxValue;
    }

    /// <summary>Makes this an unknown scalar, dropping pointer-ness, id and reference.</summary>
    public void MakeUnknown()
    {
        this = Unknown();
    }

    /// <summary>Sets 64-bit bounds from 32-bit ones after a 32-bit operation zero-extends the result.</summary>
    public void ZeroExtend32()
    {
        VarOff = VarOff.Subreg;
        Umin = U32Min; Umax = U32Max;
        if (S32Min >= 0) { Smin = S32Min; Smax = S32Max; }
        else { Smin = 0; Smax = uint.MaxValue; }
    }

    // ---- the kernel's bounds synchronisation (reg_bounds_sync) ----

    void UpdateBounds32()
    {
        var t = VarOff.Subreg;
        S32Min = Math.Max(S32Min, (int)(uint)(t.Value | (t.Mask & 0x80000000UL)));
        S32Max = Math.Min(S32Max, (int)(uint)(t.Value | (t.Mask & 0x7fffffffUL)));
        U32Min = Math.Max(U32Min, (uint)t.Value);
        U32Max = Math.Min(U32Max, (uint)(t.Value | t.Mask));
    }

    void UpdateBounds64()
    {
        Smin = Math.Max(Smin, (long)(VarOff.Value | (VarOff.Mask & 0x8000000000000000UL)));
        Smax = Math.Min(Smax, (long)(VarOff.Value | (VarOff.Mask & 0x7fffffffffffffffUL)));
        Umin = Math.Max(Umin, VarOff.Value);
        Umax = Math.Min(Umax, VarOff.Value | VarOff.Mask);
        // When the unsigned range and the tnum share exactly one value, the register is that value (in Linux 6.18 stable since March 2026,
        // "Improve bounds when tnum has a single possible value"): at umin, at the tnum's largest value, or at the
        // one tnum value strictly between umin and umax. Without it a refinement that leaves one value ends in
        // contradictory bounds, which the kernel resolves here and BpfJit would treat as a violation.
        ulong next = VarOff.Step(Umin), tmax = VarOff.Value | VarOff.Mask;
        bool uminIn = VarOff.Has(Umin);
        if (uminIn && next > Umax) MarkKnown(Umin);
        else if (!uminIn && next == tmax) MarkKnown(tmax);
        else if (!uminIn && next <= Umax && VarOff.Step(next) > Umax) MarkKnown(next);
    }

    public void UpdateBounds()
    {
        UpdateBounds32();
        UpdateBounds64();
    }

    void Deduce32()
    {
        if ((Umin >> 32) == (Umax >> 32))
        {
            U32Min = Math.Max(U32Min, (uint)Umin);
            U32Max = Math.Min(U32Max, (uint)Umax);
            if ((int)(uint)Umin <= (int)(uint)Umax)
            {
                S32Min = Math.Max(S32Min, (int)(uint)Umin);
                S32Max = Math.Min(S32Max, (int)(uint)Umax);
            }
        }
        if ((Smin >> 32) == (Smax >> 32))
        {
            U32Min = Math.Max(U32Min, (uint)Smin);
            U32Max = Math.Min(U32Max, (uint)Smax);
            if ((int)Smin <= (int)Smax)
            {
                S32Min = Math.Max(S32Min, (int)Smin);
                S32Max = Math.Min(S32Max, (int)Smax);
            }
        }
        if ((uint)(Umin >> 32) + 1 == (uint)(Umax >> 32) && (int)(uint)Umin < 0 && (int)(uint)Umax >= 0)
        {
            S32Min = Math.Max(S32Min, (int)(uint)Umin);
            S32Max = Math.Min(S32Max, (int)(uint)Umax);
        }
        if ((uint)(Smin >> 32) + 1 == (uint)(Smax >> 32) && (int)Smin < 0 && (int)Smax >= 0)
        {
            S32Min = Math.Max(S32Min, (int)Smin);
            S32Max = Math.Min(S32Max, (int)Smax);
        }
        if ((int)U32Min <= (int)U32Max)
        {
            S32Min = Math.Max(S32Min, (int)U32Min);
            S32Max = Math.Min(S32Max, (int)U32Max);
        }
        if ((uint)S32Min <= (uint)S32Max)
        {
            U32Min = Math.Max((uint)S32Min, U32Min);
            U32Max = Math.Min((uint)S32Max, U32Max);
        }
        // The signed range crosses the sign bit: the unsigned range lies on one side of it (as in Deduce64).
        else if (U32Max < (uint)S32Min)
        {
            S32Min = (int)U32Min;
            U32Max = Math.Min(U32Max, (uint)S32Max);
        }
        else if ((uint)S32Max < U32Min)
        {
            S32Max = (int)U32Max;
            U32Min = Math.Max(U32Min, (uint)S32Min);
        }
    }

    void Deduce64()
    {
        if ((long)Umin <= (long)Umax)
        {
            Smin = Math.Max(Smin, (long)Umin);
            Smax = Math.Min(Smax, (long)Umax);
        }
        if ((ulong)Smin <= (ulong)Smax)
        {
            Umin = Math.Max((ulong)Smin, Umin);
            Umax = Math.Min((ulong)Smax, Umax);
        }
        else if (Umax < (ulong)Smin)
        {
            Smin = (long)Umin;
            Umax = Math.Min(Umax, (ulong)Smax);
        }
        else if ((ulong)Smax < Umin)
        {
            Smax = (long)Umax;
            Umin = Math.Max(Umin, (ulong)Smin);
        }
    }

    void DeduceMixed()
    {
        ulong newUmin = (Umin & ~0xffffffffUL) | U32Min;
        ulong newUmax = (Umax & ~0xffffffffUL) | U32Max;
        Umin = Math.Max(Umin, newUmin);
        Umax = Math.Min(Umax, newUmax);
        long newSmin = (long)(((ulong)Smin & ~0xffffffffUL) | U32Min);
        long newSmax = (long)(((ulong)Smax & ~0xffffffffUL) | U32Max);
        Smin = Math.Max(Smin, newSmin);
        Smax = Math.Min(Smax, newSmax);
        if (S32Min >= 0 && Smin >= int.MinValue && Smax <= int.MaxValue)
        {
            Smin = S32Min; Smax = S32Max;
            Umin = (ulong)S32Min; Umax = (ulong)S32Max;
            VarOff = VarOff.Intersect(Tnum.Range((ulong)Smin, (ulong)Smax));
        }
    }

    void Deduce()
    {
        Deduce32();
        Deduce64();
        DeduceMixed();
    }

    void BoundOffset()
    {
        var v64 = VarOff.Intersect(Tnum.Range(Umin, Umax));
        var v32 = v64.Subreg.Intersect(Tnum.Range(U32Min, U32Max));
        VarOff = v64.ClearSubreg | v32;
    }

    /// <summary>The kernel's reg_bounds_sync: make tnum and the four ranges agree.</summary>
    public void Sync()
    {
        UpdateBounds();
        Deduce();
        Deduce();
        BoundOffset();
        UpdateBounds();
    }

    /// <summary>
    /// The kernel's reg_bounds_sanity_check: every range is ordered, and a constant tnum (or constant lower
    /// half) is the only value its 64-bit (or 32-bit) ranges allow.
    /// </summary>
    public readonly bool BoundsSane
    {
        get
        {
            if (Umin > Umax || Smin > Smax || U32Min > U32Max || S32Min > S32Max) return false;
            if (VarOff.IsConst && (Umin != VarOff.Value || Umax != VarOff.Value || Smin != (long)VarOff.Value || Smax != (long)VarOff.Value))
                return false;
            var sub = VarOff.Subreg;
            if (sub.IsConst && (U32Min != (uint)sub.Value || U32Max != (uint)sub.Value || S32Min != (int)(uint)sub.Value || S32Max != (int)(uint)sub.Value))
                return false;
            return true;
        }
    }

    public readonly bool Equals32Const(out uint v)
    {
        v = (uint)VarOff.Value;
        return VarOff.Subreg.IsConst;
    }
}
