namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_PERCPU_ARRAY: like <see cref="ArrayMap"/> with one slot per CPU (<see cref="Cpu.Count"/>)
/// in each element. A program sees and writes the slot of the processor it runs on; userspace reads and
/// writes all slots at once, each rounded up to 8 bytes, as the kernel's syscall does.
/// <para>
/// Layout: one region per CPU, each holding every element's slot for that CPU and starting on its own
/// cache line, as the kernel's per-CPU areas are separate. Slots of one element on different CPUs are
/// therefore never on one cache line: programs updating a counter on two processors do not make the line
/// bounce between them (with the slots of an element side by side, the dispatcher's per-CPU metrics
/// stopped two threads from scaling).
/// </para>
/// </summary>
public sealed unsafe class PerCpuArrayMap : BpfMap
{
    const int CacheLine = 64;
    readonly byte* _data;
    readonly int _slot;        // value_size rounded up to 8
    readonly nuint _region;    // one CPU's slots: MaxEntries * _slot rounded up to a cache line

    /// <summary>The largest region of one CPU's slots (<see cref="SlotStride"/> is an int).</summary>
    internal const long MaxRegion = int.MaxValue & ~(CacheLine - 1);

    internal PerCpuArrayMap(MapDefinition definition) : base(definition)
    {
        _slot = Native.Round8(ValueSize);
        _region = ((nuint)MaxEntries * (nuint)_slot + CacheLine - 1) & ~(nuint)(CacheLine - 1);
        // Untouched pages until written (page-aligned, so cache-line aligned too).
        _data = Native.AllocLazy(_region * (nuint)Cpu.Count);
        if (_data == null) throw new MapCreateException(Name, Type, Errno.ENOMEM, $"cannot reserve {_region * (nuint)Cpu.Count} bytes for the values");
    }

    /// <summary>value_size rounded up to 8, times the number of CPUs.</summary>
    public override int UserValueSize => _slot * Cpu.Count;

    /// <summary>The address of element 0's slot for CPU 0; CPU c's slot of element i is at <c>Data + i * ElementStride + c * SlotStride</c>.</summary>
    public ulong Data => (ulong)_data;

    /// <summary>The distance between the CPU slots of one element: one CPU's region (a multiple of the cache line).</summary>
    public int SlotStride => (int)_region;

    /// <summary>The distance between consecutive elements' slots for one CPU (value_size rounded up to 8).</summary>
    public int ElementStride => _slot;

    byte* SlotOf(uint index, int cpu) => _data + (nuint)cpu * _region + (nuint)index * (nuint)_slot;

    /// <summary>The address of <paramref name="cpu"/>'s slot of element <paramref name="index"/>, or 0.</summary>
    public ulong SlotAddress(uint index, int cpu) =>
        index < (uint)MaxEntries && (uint)cpu < (uint)Cpu.Count ? (ulong)SlotOf(index, cpu) : 0;

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        uint index = *(uint*)keyPtr;
        return index < (uint)MaxEntries ? (ulong)SlotOf(index, Cpu.Current()) : 0;
    }

    /// <inheritdoc />
    public override ulong LookupPerCpuElem(ulong keyPtr, ulong cpu)
    {
        uint index = *(uint*)keyPtr;
        if (index >= (uint)MaxEntries || cpu >= (ulong)Cpu.Count) return 0;
        return (ulong)SlotOf(index, (int)cpu);
    }

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags)
    {
        int check = CheckUpdate((byte*)keyPtr, flags);
        if (check != 0) return check;
        Native.Copy((byte*)valuePtr, SlotOf(*(uint*)keyPtr, Cpu.Current()), ValueSize);
        return 0;
    }

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => -Errno.EINVAL;

    /// <inheritdoc />
    public override long ForEachElem(BpfCallback callback, ulong callbackCtx)
    {
        uint key;
        long calls = 0;
        int cpu = Cpu.Current();
        for (uint i = 0; i < (uint)MaxEntries; i++)
        {
            key = i;
            calls++;
            ulong value = (ulong)SlotOf(i, cpu);
            if (callback(Handle, (ulong)&key, value, callbackCtx, 0) != 0) break;
        }
        return calls;
    }

    int CheckUpdate(byte* key, ulong flags)
    {
        if ((flags & ~UpdateFlags.Lock) > UpdateFlags.Exist) return -Errno.EINVAL;
        if (*(uint*)key >= (uint)MaxEntries) return -Errno.E2BIG;
        if ((flags & UpdateFlags.NoExist) != 0) return -Errno.EEXIST;
        if ((flags & UpdateFlags.Lock) != 0) return -Errno.EINVAL;
        return 0;
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.ENOENT;
        for (int cpu = 0; cpu < Cpu.Count; cpu++)
            Native.Copy(SlotOf(index, cpu), value + cpu * _slot, _slot);
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        int check = CheckUpdate(key, flags);
        if (check != 0) return check;
        for (int cpu = 0; cpu < Cpu.Count; cpu++)
            Native.Copy(value + cpu * _slot, SlotOf(*(uint*)key, cpu), ValueSize);
        return 0;
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => -Errno.EINVAL;

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    /// <inheritdoc />
    internal override bool FindValue(ulong address, out ulong start, out int length)
    {
        ulong data = (ulong)_data, offset = address - data;
        length = ValueSize;
        ulong cpu = Math.Min(offset / _region, (ulong)Cpu.Count - 1);
        ulong index = Math.Min((offset - cpu * _region) / (ulong)_slot, (ulong)MaxEntries - 1);
        start = data + cpu * _region + index * (ulong)_slot;
        return address >= data && Near(address, start, _slot);
    }

    /// <inheritdoc />
    protected override void FreeMemory() => Native.FreeLazy(_data, _region * (nuint)Cpu.Count);
}
