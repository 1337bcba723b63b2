using System.Numerics;
using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH: a chained hash table of native elements.
/// <para>
/// Readers (programs and userspace lookups) walk the chains without locks; writers serialise on a
/// per-map lock. An update never writes into a live element: it builds a complete new element and
/// publishes it with one pointer store, then retires the old one through <see cref="MapEpoch"/>, so a
/// reader sees either the old or the new value, never a mix, and never freed memory. The exceptions are
/// the kernel's: BPF_F_LOCK updates copy in place under the value's spin lock, and per-CPU updates
/// of an existing key write the slots in place.
/// </para>
/// <para>
/// Element layout: <c>+0</c> chain next, <c>+8/+16</c> LRU list prev/next, <c>+24 u32</c> hash,
/// <c>+28 u8</c> LRU referenced bit, <c>+32</c> key (rounded to 8), then the value (one 8-byte-aligned slot,
/// or <see cref="Cpu.Count"/> slots for per-CPU maps).
/// </para>
/// <para>
/// LRU maps evict instead of failing with -E2BIG when full. Like the kernel's LRU they approximate
/// recency with a referenced bit set by program lookups (not userspace ones): eviction takes the oldest element in insertion order
/// whose bit is clear, giving set ones a second chance (the CLOCK algorithm), in O(1) amortised.
/// </para>
/// </summary>
public sealed unsafe class HashMap : BpfMap
{
    const int NextOffset = 0, LruPrevOffset = 8, LruNextOffset = 16, HashOffset = 24, RefOffset = 28, KeyOffset = 32;

    readonly byte** _buckets;
    readonly uint _mask;
    readonly ulong _seed;
    readonly int _keyStride;
    readonly int _slot;          // value_size rounded to 8
    readonly int _slots;         // 1, or Cpu.Count for per-CPU maps
    readonly int _elementSize;
    readonly bool _perCpu;
    readonly bool _lru;
    readonly long _elementCharge;    // an element's bytes, charged on insert without preallocation (else 0)
    readonly Lock _writeLock = new();
    int _count;
    byte* _lruHead;              // oldest
    byte* _lruTail;              // newest

    internal HashMap(MapDefinition definition) : base(definition)
    {
        _perCpu = Type is MapType.PerCpuHash or MapType.LruPerCpuHash;
        _lru = Type is MapType.LruHash or MapType.LruPerCpuHash;
        _keyStride = Native.Round8(KeySize);
        _slot = Native.Round8(ValueSize);
        _slots = _perCpu ? Cpu.Count : 1;
        _elementSize = KeyOffset + _keyStride + _slot * _slots;
        _elementCharge = (Flags & MapFlags.NoPrealloc) != 0 ? _elementSize : 0;
        uint buckets = BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(MaxEntries, 1, 1 << 22));
        _mask = buckets - 1;
        _buckets = (byte**)Native.Alloc((nuint)buckets * (nuint)sizeof(byte*), 64);
        _seed = (Flags & MapFlags.ZeroSeed) != 0 ? 0 : (ulong)Random.Shared.NextInt64();
    }

    /// <summary>The number of elements.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <inheritdoc />
    public override int UserValueSize => _perCpu ? _slot * _slots : ValueSize;

    // ---- element access -----------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte** NextLink(byte* e) => (byte**)(e + NextOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte* Next(byte* e) => *(byte**)(e + NextOffset);

    /// <summary>An acquiring pointer load (readers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte* Load(byte** link) => (byte*)Volatile.Read(ref *(nint*)link);

    /// <summary>A releasing pointer store (writers publish complete elements with it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Publish(byte** link, byte* value) => Volatile.Write(ref *(nint*)link, (nint)value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* ValueOf(byte* e) => e + KeyOffset + _keyStride;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* ThisCpuValue(byte* e) => _perCpu ? ValueOf(e) + Cpu.Current() * _slot : ValueOf(e);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    uint Hash(byte* key) => KeyHash.Compute(key, KeySize, _seed);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* Find(byte* key, uint hash)
    {
        for (byte* e = Load(_buckets + (hash & _mask)); e != null; e = Load(NextLink(e)))
        {
            if (*(uint*)(e + HashOffset) == hash && Native.Equal(e + KeyOffset, key, KeySize)) return e;
        }
        return null;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Touch(byte* e)
    {
        if (_lru && e[RefOffset] == 0) e[RefOffset] = 1;
    }

    // ---- program side -------------------------------------------------------------------------------

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        byte* e = Find((byte*)keyPtr, Hash((byte*)keyPtr));
        if (e == null) return 0;
        Touch(e);
        return (ulong)ThisCpuValue(e);
    }

    /// <inheritdoc />
    public override ulong LookupPerCpuElem(ulong keyPtr, ulong cpu)
    {
        if (!_perCpu || cpu >= (ulong)_slots) return 0;
        byte* e = Find((byte*)keyPtr, Hash((byte*)keyPtr));
        if (e == null) return 0;
        Touch(e);
        return (ulong)(ValueOf(e) + (int)cpu * _slot);
    }

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => Store((byte*)keyPtr, (byte*)valuePtr, flags, allCpus: false);

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => Remove((byte*)keyPtr);

    /// <inheritdoc />
    public override long ForEachElem(BpfCallback callback, ulong callbackCtx)
    {
        long calls = 0;
        for (uint b = 0; b <= _mask; b++)
        {
            for (byte* e = Load(_buckets + b); e != null;)
            {
                byte* next = Load(NextLink(e));   // the callback may delete e (it stays readable)
                calls++;
                if (callback(Handle, (ulong)(e + KeyOffset), (ulong)ThisCpuValue(e), callbackCtx, 0) != 0) return calls;
                e = next;
            }
        }
        return calls;
    }

    // ---- userspace ----------------------------------------------------------------------------------

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        byte* e = Find(key, Hash(key));
        if (e == null) return -Errno.ENOENT;
        // Like htab_lru_map_lookup_elem_sys, a userspace lookup does not count as a use.
        if (_perCpu)
        {
            Native.Copy(ValueOf(e), value, _slot * _slots);
            return 0;
        }
        BpfSpinLock.CopyValue(ValueOf(e), value, ValueSize, SpinLockOffset, (flags & UpdateFlags.Lock) != 0, lockDestination: false, TimerOffset, Kptrs);
        BpfSpinLock.ClearSpecialFields(value, SpinLockOffset, TimerOffset, Kptrs);
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags) => Store(key, value, flags, allCpus: true);

    /// <summary>
    /// The kernel's __htab_map_lookup_and_delete_elem (BPF_MAP_LOOKUP_AND_DELETE_ELEM, since 5.14): under the
    /// bucket's lock, the element's value is copied out as a lookup copies it (every CPU's slot for per-CPU maps; under
    /// the value's spin lock with BPF_F_LOCK; special fields zeroed) and the element is unlinked. -ENOENT when absent,
    /// with the caller's buffer untouched. The flags were checked by <see cref="BpfMap.LookupAndDelete"/>.
    /// </summary>
    protected override int LookupAndDeleteCore(byte* key, byte* value, ulong flags)
    {
        uint hash = Hash(key);
        lock (_writeLock)
        {
            byte** link = FindLink(hash, key);
            byte* e = *link;
            if (e == null) return -Errno.ENOENT;
            if (_perCpu) Native.Copy(ValueOf(e), value, _slot * _slots);
            else
            {
                BpfSpinLock.CopyValue(ValueOf(e), value, ValueSize, SpinLockOffset, (flags & UpdateFlags.Lock) != 0, lockDestination: false, TimerOffset, Kptrs);
                BpfSpinLock.ClearSpecialFields(value, SpinLockOffset, TimerOffset, Kptrs);
            }
            Unlink(link, e);
            return 0;
        }
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => Remove(key);

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey)
    {
        uint b = 0;
        if (key != null)
        {
            uint hash = Hash(key);
            byte* e = Find(key, hash);
            if (e != null)
            {
                byte* next = Load(NextLink(e));
                if (next != null)
                {
                    Native.Copy(next + KeyOffset, nextKey, KeySize);
                    return 0;
                }
                b = (hash & _mask) + 1;
            }
        }
        for (; b <= _mask; b++)
        {
            byte* first = Load(_buckets + b);
            if (first != null)
            {
                Native.Copy(first + KeyOffset, nextKey, KeySize);
                return 0;
            }
        }
        return -Errno.ENOENT;
    }

    // ---- writers ------------------------------------------------------------------------------------

    int Store(byte* key, byte* value, ulong flags, bool allCpus)
    {
        ulong mode = flags & ~UpdateFlags.Lock;
        bool locked = (flags & UpdateFlags.Lock) != 0;
        if (mode > UpdateFlags.Exist) return -Errno.EINVAL;
        if (locked && (SpinLockOffset < 0 || _perCpu)) return -Errno.EINVAL;
        uint hash = Hash(key);
        lock (_writeLock)
        {
            byte** link = FindLink(hash, key);
            byte* old = *link;
            if (old != null && mode == UpdateFlags.NoExist) return -Errno.EEXIST;
            if (old == null && mode == UpdateFlags.Exist) return -Errno.ENOENT;

            if (old != null && (locked || _perCpu))
            {
                // The kernel updates these in place: under the value's lock, or the per-CPU slots.
                if (locked) BpfSpinLock.CopyValue(value, ValueOf(old), ValueSize, SpinLockOffset, locked: true, lockDestination: true, TimerOffset, Kptrs);
                else WriteSlots(old, value, allCpus);
                Touch(old);
                return 0;
            }
            if (old == null && _count >= MaxEntries)
            {
                if (!_lru) return -Errno.E2BIG;
                EvictOne();
                link = FindLink(hash, key);   // the eviction may have changed this chain
            }

            // BPF_F_NO_PREALLOC: each element is charged when allocated (a replacement too, before the old one goes).
            if (_elementCharge != 0 && !ChargeElement(_elementCharge)) return -Errno.ENOMEM;
            byte* fresh = Native.Alloc((nuint)_elementSize);
            *(uint*)(fresh + HashOffset) = hash;
            Native.Copy(key, fresh + KeyOffset, KeySize);
            if (_perCpu) WriteSlots(fresh, value, allCpus);
            else BpfSpinLock.CopyValue(value, ValueOf(fresh), ValueSize, SpinLockOffset, locked: false, lockDestination: true, TimerOffset, Kptrs);
            if (old != null)
            {
                *NextLink(fresh) = Next(old);
                Publish(link, fresh);      // publish: readers see old or fresh, both complete
                if (_lru) { LruRemove(old); LruAppend(fresh); }
                // The replaced element's special fields are freed (check_and_free_fields): its timer stops.
                if (!_perCpu) BpfTimers.CancelAndFree(this, ValueOf(old));
                MapEpoch.Retire(old, this);
                if (_elementCharge != 0) UnchargeElement(_elementCharge);
            }
            else
            {
                *NextLink(fresh) = *link;
                Publish(link, fresh);
                if (_lru) LruAppend(fresh);
                Volatile.Write(ref _count, _count + 1);
            }
            return 0;
        }
    }

    /// <summary>The link that points at <paramref name="key"/>'s element, or the chain's terminating null link (writer lock held).</summary>
    byte** FindLink(uint hash, byte* key)
    {
        byte** link = _buckets + (hash & _mask);
        for (byte* e = *link; e != null; e = *link)
        {
            if (*(uint*)(e + HashOffset) == hash && Native.Equal(e + KeyOffset, key, KeySize)) break;
            link = NextLink(e);
        }
        return link;
    }

    void WriteSlots(byte* e, byte* value, bool allCpus)
    {
        byte* slots = ValueOf(e);
        if (allCpus)
        {
            for (int cpu = 0; cpu < _slots; cpu++) Native.Copy(value + cpu * _slot, slots + cpu * _slot, ValueSize);
        }
        else
        {
            Native.Copy(value, slots + Cpu.Current() * _slot, ValueSize);
        }
    }

    int Remove(byte* key)
    {
        uint hash = Hash(key);
        lock (_writeLock)
        {
            byte** link = FindLink(hash, key);
            byte* e = *link;
            if (e == null) return -Errno.ENOENT;
            Unlink(link, e);
            return 0;
        }
    }

    void Unlink(byte** link, byte* e)
    {
        Publish(link, Next(e));
        if (_lru) LruRemove(e);
        Volatile.Write(ref _count, _count - 1);
        if (!_perCpu) BpfTimers.CancelAndFree(this, ValueOf(e));
        MapEpoch.Retire(e, this);
        if (_elementCharge != 0) UnchargeElement(_elementCharge);
    }

    /// <inheritdoc />
    internal override byte* TimerKey(byte* value, uint* scratch) => value - _keyStride;

    // ---- LRU list (writer lock held) ----------------------------------------------------------------

    void EvictOne()
    {
        // Second chance: a referenced element moves to the tail with its bit cleared.
        while (true)
        {
            byte* victim = _lruHead;
            if (victim[RefOffset] != 0 && victim != _lruTail)
            {
                victim[RefOffset] = 0;
                LruRemove(victim);
                LruAppend(victim);
                continue;
            }
            byte** link = FindLink(*(uint*)(victim + HashOffset), victim + KeyOffset);
            Unlink(link, victim);
            return;
        }
    }

    void LruAppend(byte* e)
    {
        *(byte**)(e + LruPrevOffset) = _lruTail;
        *(byte**)(e + LruNextOffset) = null;
        if (_lruTail != null) *(byte**)(_lruTail + LruNextOffset) = e;
        else _lruHead = e;
        _lruTail = e;
    }

    void LruRemove(byte* e)
    {
        byte* prev = *(byte**)(e + LruPrevOffset);
        byte* next = *(byte**)(e + LruNextOffset);
        if (prev != null) *(byte**)(prev + LruNextOffset) = next;
        else _lruHead = next;
        if (next != null) *(byte**)(next + LruPrevOffset) = prev;
        else _lruTail = prev;
    }

    /// <inheritdoc />
    internal override bool FindValue(ulong address, out ulong start, out int length)
    {
        start = 0;
        length = 0;
        for (uint b = 0; b <= _mask; b++)
            for (byte* e = Load(_buckets + b); e != null; e = Load(NextLink(e)))
                if (Candidate(e, address, ref start, ref length)) return true;
        // Replaced or deleted elements stay readable until the epoch frees them, as under the kernel's RCU.
        foreach (nint e in MapEpoch.PendingOf(this))
            if (Candidate((byte*)e, address, ref start, ref length)) return true;
        return length != 0;
    }

    bool Candidate(byte* e, ulong address, ref ulong start, ref int length)
    {
        ulong values = (ulong)(e + KeyOffset + _keyStride);
        if (!Near(address, values, _slot * _slots)) return false;
        ulong slot = values + Math.Min((address - values) / (ulong)_slot, (ulong)_slots - 1) * (ulong)_slot;
        return Better(address, slot, ValueSize, ref start, ref length);
    }

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        for (uint b = 0; b <= _mask; b++)
        {
            for (byte* e = _buckets[b]; e != null;)
            {
                byte* next = Next(e);
                Native.Free(e);
                e = next;
            }
        }
        Native.Free(_buckets);
    }
}

/// <summary>The keyed hash of hash maps: 8 bytes at a time, multiply-xorshift mixing, a per-map seed.</summary>
internal static unsafe class KeyHash
{
    const ulong K = 0x9E3779B97F4A7C15;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Compute(byte* p, int length, ulong seed)
    {
        ulong h = seed ^ ((ulong)length * K);
        while (length >= 8)
        {
            h = (h ^ Unsafe.ReadUnaligned<ulong>(p)) * K;
            h ^= h >> 29;
            p += 8;
            length -= 8;
        }
        if (length > 0)
        {
            ulong tail = 0;
            for (int i = 0; i < length; i++) tail |= (ulong)p[i] << (8 * i);
            h = (h ^ tail) * K;
            h ^= h >> 29;
        }
        // fmix64
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccd;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53;
        h ^= h >> 33;
        return (uint)h;
    }
}
