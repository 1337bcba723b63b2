namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_ARRAY: <c>max_entries</c> values of <c>value_size</c> bytes (each at an 8-byte stride) in
/// one zeroed native block that never moves, indexed by a u32 key. Elements always exist and cannot be
/// deleted. Updates copy into the element in place, as in the kernel: a program reading the element at
/// the same moment may see a mix of old and new bytes unless both sides use the value's bpf_spin_lock
/// (BPF_F_LOCK). A single-entry ARRAY also backs global data (.data/.rodata/.bss) addressed directly.
/// </summary>
public sealed unsafe class ArrayMap : BpfMap
{
    readonly byte* _data;
    readonly int _stride;

    internal ArrayMap(MapDefinition definition) : base(definition)
    {
        _stride = Native.Round8(ValueSize);
        // Untouched pages until written: a large array costs address space, not memory, at creation.
        _data = Native.AllocLazy(Size);
        if (_data == null) throw new MapCreateException(Name, Type, Errno.ENOMEM, $"cannot reserve {Size} bytes for the values");
        SetHeaderData(_data);
    }

    /// <summary>The address of element 0; element i is at <c>Data + i * Stride</c>.</summary>
    public ulong Data => (ulong)_data;

    /// <summary>The distance between elements (value_size rounded up to 8).</summary>
    public int Stride => _stride;

    /// <summary>The address of element <paramref name="index"/>'s value, or 0 when out of range.</summary>
    public ulong ValueAddress(uint index) => index < (uint)MaxEntries ? (ulong)(_data + (nuint)index * (nuint)_stride) : 0;

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        uint index = *(uint*)keyPtr;
        return index < (uint)MaxEntries ? (ulong)(_data + (nuint)index * (nuint)_stride) : 0;
    }

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => Store((byte*)keyPtr, (byte*)valuePtr, flags);

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => -Errno.EINVAL;

    /// <inheritdoc />
    public override long ForEachElem(BpfCallback callback, ulong callbackCtx)
    {
        uint key;
        long calls = 0;
        for (uint i = 0; i < (uint)MaxEntries; i++)
        {
            key = i;
            calls++;
            if (callback(Handle, (ulong)&key, (ulong)(_data + (nuint)i * (nuint)_stride), callbackCtx, 0) != 0) break;
        }
        return calls;
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.ENOENT;
        byte* element = _data + (nuint)index * (nuint)_stride;
        BpfSpinLock.CopyValue(element, value, ValueSize, SpinLockOffset, (flags & UpdateFlags.Lock) != 0, lockDestination: false, TimerOffset, Kptrs);
        BpfSpinLock.ClearSpecialFields(value, SpinLockOffset, TimerOffset, Kptrs);
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags) => Store(key, value, flags);

    int Store(byte* key, byte* value, ulong flags)
    {
        if ((flags & ~UpdateFlags.Lock) > UpdateFlags.Exist) return -Errno.EINVAL;
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        if ((flags & UpdateFlags.NoExist) != 0) return -Errno.EEXIST;
        bool locked = (flags & UpdateFlags.Lock) != 0;
        if (locked && SpinLockOffset < 0) return -Errno.EINVAL;
        byte* element = _data + (nuint)index * (nuint)_stride;
        BpfSpinLock.CopyValue(value, element, ValueSize, SpinLockOffset, locked, lockDestination: true, TimerOffset, Kptrs);
        // array_map_update_elem frees the element's special fields after the copy: its timer is cancelled, its kptrs emptied.
        BpfTimers.CancelAndFree(this, element);
        BpfSpinLock.FreeKptrs(element, Definition.Kptrs);
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
        start = data + Math.Min(offset / (ulong)_stride, (ulong)MaxEntries - 1) * (ulong)_stride;
        return address >= data && Near(address, start, _stride);
    }

    /// <inheritdoc />
    internal override byte* TimerKey(byte* value, uint* scratch)
    {
        *scratch = (uint)((ulong)(value - _data) / (ulong)_stride);
        return (byte*)scratch;
    }

    /// <inheritdoc />
    protected override void FreeMemory() => Native.FreeLazy(_data, Size);

    nuint Size => (nuint)_stride * (nuint)MaxEntries;

    /// <inheritdoc />
    internal override bool HoldsValueAddress(ulong address) =>
        address >= (ulong)_data && address - (ulong)_data < (ulong)Size;
}
