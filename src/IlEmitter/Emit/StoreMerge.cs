using BpfJit.Frontend;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Byte stores to the stack that together write the low 2, 4 or 8 bytes of one value, little-endian, in
/// consecutive bytes: what clang emits for a field of a packed struct (the tubular dispatcher's LPM key:
/// <c>*(u8 *)(r10 - 5) = r4; r4 &gt;&gt;= 8; *(u8 *)(r10 - 4) = r4; ...</c>, 16 byte stores and 12 shifts and
/// moves for four u32 words). The group becomes one store of the value's low bytes at its first store,
/// the other stores disappear, and the shifts that only fed them are then dead results (<see cref="Liveness"/>).
/// <para>
/// Exact: within one basic block each register is tracked as <c>value &gt;&gt; shift</c> of a value born at
/// some earlier definition (<c>mov</c> copies, a 64-bit <c>rsh</c> by a constant adds to the shift, anything
/// else is a new value), so a byte store of a register whose shift is 8k stores byte k of that value. A group
/// is merged only when a register holds the value itself at the first store, and every instruction between its
/// first and last store is an ALU operation or a store through r10 that touches none of the group's bytes:
/// nothing can read the bytes while they are half written, and the final memory is the same.
/// </para>
/// </summary>
internal static class StoreMerge
{
    /// <summary>One merged group: at <see cref="Slot"/>, <c>*(uW *)(r10 + Offset) = rReg</c> replaces the byte stores at <see cref="Slots"/>.</summary>
    public sealed record Group(int Slot, int Reg, short Offset, int Width, int[] Slots);

    readonly record struct Sym(int Value, int Shift);

    readonly record struct ByteStore(int Slot, short Offset, int Value, int Byte);

    /// <summary>
    /// The groups of <paramref name="program"/>: per slot that carries the merged store, its group; and the set of
    /// slots whose byte store is absorbed into a group (the merged store's own slot excluded), each with the merged store's slot.
    /// </summary>
    public static (Dictionary<int, Group> Merged, Dictionary<int, int> Absorbed) Find(Instruction[] program, bool[] reachable, bool[] isTarget)
    {
        var merged = new Dictionary<int, Group>();
        var absorbed = new Dictionary<int, int>();
        int start = 0;
        while (start < program.Length)
        {
            int end = BlockEnd(program, reachable, isTarget, start);
            // Most blocks hold fewer than two byte stores to the stack: nothing to track there (compile time).
            int byteStores = 0;
            for (int i = start; i < end && byteStores < 2; i++) if (IsStackByteStore(program[i])) byteStores++;
            if (byteStores >= 2) FindInBlock(program, start, end, merged, absorbed);
            start = end;
        }
        return (merged, absorbed);
    }

    /// <summary><c>*(u8 *)(r10 + off) = rX</c>: what a group is made of.</summary>
    static bool IsStackByteStore(Instruction ins) =>
        ins.Class == InstructionClass.Stx && ins.MemMode == MemMode.Mem && ins.MemSize == MemSize.B && ins.Dst == 10;

    /// <summary>The first slot after the straight-line block that starts at <paramref name="start"/>.</summary>
    static int BlockEnd(Instruction[] program, bool[] reachable, bool[] isTarget, int start)
    {
        int i = start;
        while (i < program.Length)
        {
            var ins = program[i];
            if (!reachable[i]) return i == start ? i + (ins.IsLdImm64 ? 2 : 1) : i;
            if (i != start && isTarget[i]) return i;
            if (!IsStraight(ins)) return i + 1;
            i += ins.IsLdImm64 ? 2 : 1;
        }
        return i;
    }

    /// <summary>ALU, loads, stores, ld_imm64: no control transfer, no atomic, no call.</summary>
    static bool IsStraight(Instruction ins) => ins.Class switch
    {
        InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx or InstructionClass.St => true,
        InstructionClass.Stx => ins.MemMode != MemMode.Atomic,
        InstructionClass.Ld => ins.IsLdImm64,
        _ => false,
    };

    /// <summary>True for an instruction that may sit inside a group's span: ALU, or a plain store through r10.</summary>
    static bool SpanSafe(Instruction ins) =>
        ins.Class is InstructionClass.Alu or InstructionClass.Alu64
        || (ins.Class is InstructionClass.St or InstructionClass.Stx && ins.MemMode == MemMode.Mem && ins.Dst == 10);

    static void FindInBlock(Instruction[] program, int start, int end, Dictionary<int, Group> merged, Dictionary<int, int> absorbed)
    {
        // Every register starts as a value of its own; each definition the tracker does not model is a new value.
        int next = 0;
        var regs = new Sym[BpfAbi.RegisterCount];
        for (int r = 0; r <= BpfAbi.MaxRegister; r++) regs[r] = new Sym(next++, 0);
        // Plain arrays and loops here, not List<ByteStore> and LINQ: this runs in every process's first compile, and
        // each framework generic over an emitter struct is one more method for RyuJIT there (docs/perf.md, "Cold start").
        var stores = new ByteStore[end - start];
        int count = 0;
        var snapshots = new Dictionary<int, Sym[]>();
        for (int i = start; i < end; i++)
        {
            var ins = program[i];
            if (IsStackByteStore(ins) && regs[ins.Src].Shift % 8 == 0)
            {
                stores[count++] = new ByteStore(i, ins.Offset, regs[ins.Src].Value, regs[ins.Src].Shift / 8);
                snapshots[i] = (Sym[])regs.Clone();
            }
            switch (ins.Class)
            {
                case InstructionClass.Alu64 when ins.AluOp == AluOp.Mov && ins.SourceIsReg && ins.Offset == 0:
                    regs[ins.Dst] = regs[ins.Src];
                    break;
                case InstructionClass.Alu64 when ins.AluOp == AluOp.Rsh && !ins.SourceIsReg && ins.Imm is > 0 and < 64
                                                 && regs[ins.Dst].Shift + ins.Imm < 64:
                    regs[ins.Dst] = regs[ins.Dst] with { Shift = regs[ins.Dst].Shift + ins.Imm };
                    break;
                case InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Ldx:
                    regs[ins.Dst] = new Sym(next++, 0);
                    break;
                case InstructionClass.Ld when ins.IsLdImm64:
                    regs[ins.Dst] = new Sym(next++, 0);
                    i++;
                    break;
            }
        }
        // Candidates: the byte stores of one value whose byte k lands at base + k, taken in the order of their first
        // store; a group's stores are in slot order (they were found in it).
        var grouped = new bool[count];
        Span<int> group = stackalloc int[8];
        for (int g = 0; g < count; g++)
        {
            if (grouped[g]) continue;
            int value = stores[g].Value, lo = stores[g].Offset - stores[g].Byte;
            int width = 0;
            for (int k = g; k < count; k++)
            {
                if (grouped[k] || stores[k].Value != value || stores[k].Offset - stores[k].Byte != lo) continue;
                grouped[k] = true;
                if (width < group.Length) group[width] = k;
                width++;
            }
            if (width is not (2 or 4 or 8)) continue;
            // Bytes 0 .. width-1, each once.
            uint bytes = 0;
            for (int m = 0; m < width; m++) bytes |= 1u << stores[group[m]].Byte;
            if (bytes != (1u << width) - 1) continue;
            int first = stores[group[0]].Slot, last = stores[group[width - 1]].Slot;
            int hi = lo + width;
            if (lo < short.MinValue) continue;
            var slots = new int[width];
            bool taken = false;
            for (int m = 0; m < width; m++)
            {
                slots[m] = stores[group[m]].Slot;
                taken |= merged.ContainsKey(slots[m]) || absorbed.ContainsKey(slots[m]);
            }
            if (taken) continue;
            bool safe = true;
            for (int i = first, member = 0; i <= last && safe; i++)
            {
                if (member < width && slots[member] == i) { member++; continue; }
                var ins = program[i];
                if (!SpanSafe(ins)) safe = false;
                else if (ins.Class is InstructionClass.St or InstructionClass.Stx)
                {
                    int size = ins.MemSize switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };
                    if (ins.Offset < hi && ins.Offset + size > lo) safe = false;
                }
            }
            if (!safe) continue;
            // A register that holds the value itself when the first store runs.
            var at = snapshots[first];
            int reg = -1;
            for (int r = 0; r < at.Length && reg < 0; r++) if (at[r].Value == value && at[r].Shift == 0) reg = r;
            if (reg < 0 || reg == 10) continue;
            merged[first] = new Group(first, reg, (short)lo, width, slots);
            foreach (int slot in slots) if (slot != first) absorbed[slot] = first;
        }
    }
}
