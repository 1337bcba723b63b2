namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_PERCPU_ARRAY: like <see cref="ArrayMap"/> with one slot per CPU (<see cref="Cpu.Count"/>)
/// in each element. A program sees and writes the slot of the processor it runs on; userspace reads and
/// writes all slots at once, each rounded up to 8 bytes, as the kernel's syscall does.
/// </summary>
public sealed unsafe class PerCpuArrayMap : BpfMap
{
    readonly byte* _data;
    readonly int _slot;      // value_size rounded up to 8
    readonly int _element;   // _slot * Cpu.Count

    internal PerCpuArrayMap(MapDefinition definition) : base(definition)
    {
        _slot = Native.Round8(ValueSize);
        _element = _slot * Cpu.Count;
        _data = Native.Alloc((nuint)_element * (nuint)MaxEntries, 64);
    }

    /// <summary>value_size rounded up to 8, times the number of CPUs.</summary>
    public override int UserValueSize => _element;

    /// <summary>The address of <paramref name="cpu"/>'s slot of element <paramref name="index"/>, or 0.</summary>
    public ulong SlotAddress(uint index, int cpu) =>
        index < (uint)MaxEntries && (uint)cpu < (uint)Cpu.Count ? (ulong)(_data + (nuint)index * (nuint)_element + (nuint)(cpu * _slot)) : 0;

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        uint index = *(uint*)keyPtr;
        return index < (uint)MaxEntries ? (ulong)(_data + (nuint)index * (nuint)_element + (nuint)(Cpu.Current() * _slot)) : 0;
    }

    /// <inheritdoc />
    public override ulong LookupPerCpuElem(ulong keyPtr, ulong cpu)
    {
        uint index = *(uint*)keyPtr;
        if (index >= (uint)MaxEntries || cpu >= (ulong)Cpu.Count) return 0;
        return (ulong)(_data + (nuint)index * (nuint)_element + (nuint)((int)cpu * _slot));
    }

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags)
    {
        int check = CheckUpdate((byte*)keyPtr, flags);
        if (check != 0) return check;
        byte* slot = _data + (nuint)(*(uint*)keyPtr) * (nuint)_element + (nuint)(Cpu.Current() * _slot);
        Native.Copy((byte*)valuePtr, slot, ValueSize);
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
            ulong value = (ulong)(_data + (nuint)i * (nuint)_element + (nuint)(cpu * _slot));
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
        Native.Copy(_data + (nuint)index * (nuint)_element, value, _element);
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        int check = CheckUpdate(key, flags);
        if (check != 0) return check;
        byte* element = _data + (nuint)(*(uint*)key) * (nuint)_element;
        for (int cpu = 0; cpu < Cpu.Count; cpu++)
            Native.Copy(value + cpu * _slot, element + cpu * _slot, ValueSize);
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
        start = data + Math.Min(offset / (ulong)_slot, (ulong)(Cpu.Count * MaxEntries) - 1) * (ulong)_slot;
        return address >= data && Near(address, start, _slot);
    }

    /// <inheritdoc />
    protected override void FreeMemory() => Native.Free(_data);
}
