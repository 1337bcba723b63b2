using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The lookup index of <see cref="LpmTrieMap"/>: every stored (non-intermediate) trie node, hashed by its
/// prefix length and the first prefix-length bits of its data, in one open-addressing table, plus the sorted
/// list of the distinct prefix lengths present. A longest-prefix lookup probes the table once per distinct
/// length, longest first, and the first hit is the answer. The trie stays the source of truth; the index
/// holds pointers to the trie's own nodes, so a hit returns the same value memory as the trie walk.
/// <para>
/// Concurrency. Writers run under the map's write lock. Readers take no lock: they load the published
/// length list and table once (acquiring loads) and only ever see complete memory.
/// A slot is <c>{node, tag, length}</c>; a writer fills tag and length of an empty or tombstoned slot before
/// publishing the node pointer with a releasing store, so a reader that sees the pointer sees the tag.
/// Replacing a node overwrites the pointer in place (same key, same tag); deleting stores the tombstone 1.
/// Slots never move: growing or compacting builds a new table, publishes it, and retires the old one through
/// <see cref="MapEpoch"/>, as a new length list retires the old list. The trie's nodes are retired by the
/// trie after the index stopped pointing at them, so no reader can obtain a freed node from either.
/// </para>
/// <para>
/// Native layout. Table: 64-byte header (<c>+0 u64</c> mask), then 16-byte slots (<c>+0</c> node,
/// <c>+8 u32</c> tag, <c>+12 u32</c> length), then a one-hash filter of 4 bits per slot (the bit <c>tag mod
/// bits</c> of every node ever placed in this table is set): a probe whose bit is clear stops without
/// touching the slots. Bits are never cleared; a rebuilt table starts a new filter from the live nodes. Length list: <c>+0 i32</c> count (−1 when more than
/// <see cref="MaxProbedLengths"/> lengths are present: readers walk the trie instead), then u32 lengths,
/// longest first.
/// </para>
/// </summary>
internal unsafe struct LpmPrefixIndex
{
    /// <summary>
    /// The most distinct prefix lengths a lookup probes; with more, <see cref="LpmTrieMap"/> walks the trie
    /// (a probe costs about as much as two or three trie levels, and the trie's depth is bounded by the key).
    /// </summary>
    public const int MaxProbedLengths = 24;

    const int HeaderBytes = 64, SlotBytes = 16, MinCapacity = 16;
    const uint FilterBitsPerSlot = 4;   // at least 8 filter bits per stored node (the table is at most half full)
    const nint Tombstone = 1;
    const ulong K1 = 0x9E3779B97F4A7C15, K2 = 0xC2B2AE3D27D4EB4F;

    readonly int _dataOffset;
    readonly ulong _seed;
    readonly int[] _lengthCounts;     // writers only: stored nodes per prefix length
    nint _table;                      // byte*, published; readers load it with an acquiring read
    nint _lengths;                    // int*, published
    int _live, _used;                 // writers only: slots holding a node, slots holding a node or a tombstone
    int _distinct;

    /// <summary>An empty index for nodes whose data (zero-padded to 8 bytes) starts <paramref name="dataOffset"/> bytes in.</summary>
    public LpmPrefixIndex(int dataOffset, uint maxPrefix)
    {
        _dataOffset = dataOffset;
        _seed = (ulong)Random.Shared.NextInt64();
        _lengthCounts = new int[maxPrefix + 1];
        _table = (nint)NewTable(MinCapacity);
        _lengths = (nint)NewLengths();
    }

    /// <summary>The number of distinct prefix lengths stored.</summary>
    public int DistinctLengths => Volatile.Read(ref _distinct);

    /// <summary>True when lookups probe the index (at most <see cref="MaxProbedLengths"/> distinct lengths).</summary>
    public bool Active => *(int*)Volatile.Read(ref _lengths) >= 0;

    /// <summary>The table's slot count (tests check that it grows and compacts).</summary>
    public int Capacity => (int)(*(ulong*)Volatile.Read(ref _table) + 1);

    /// <summary>The mask of the first <paramref name="bits"/> (1..63) bits of a little-endian-loaded word of big-endian bit order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong HeadMask(uint bits) => BinaryPrimitives.ReverseEndianness(ulong.MaxValue << (int)(64 - bits));

    /// <summary>
    /// The hash of key word <paramref name="index"/>: a seeded multiply whose high half is folded down. Words are
    /// hashed independently and summed (<see cref="Hash"/>), so the multiplies of a key's words run in parallel
    /// and a lookup hashes each full word once for every prefix length it probes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong WordHash(ulong word, uint index)
    {
        ulong x = (word ^ _seed ^ (index * K2)) * K1;
        return x ^ (x >> 32);
    }

    /// <summary>The hash of a prefix length over the summed hashes of its full words (<paramref name="fullSum"/>) and its masked tail word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong Finish(ulong fullSum, ulong* words, uint length)
    {
        ulong h = fullSum + length * K1;
        uint full = length >> 6;
        if ((length & 63) != 0) h += WordHash(words[full] & HeadMask(length & 63), full);
        h = (h ^ (h >> 32)) * K2;
        return h ^ (h >> 29);
    }

    /// <summary>The hash of the first <paramref name="length"/> bits of <paramref name="words"/> and of the length itself.</summary>
    ulong Hash(ulong* words, uint length)
    {
        ulong sum = 0;
        uint full = length >> 6;
        for (uint i = 0; i < full; i++) sum += WordHash(words[i], i);
        return Finish(sum, words, length);
    }

    /// <summary>True when the first <paramref name="length"/> bits of both word arrays are equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool SameHead(ulong* a, ulong* b, uint length)
    {
        uint full = length >> 6;
        for (uint i = 0; i < full; i++)
            if (a[i] != b[i]) return false;
        return (length & 63) == 0 || ((a[full] ^ b[full]) & HeadMask(length & 63)) == 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong* DataOf(byte* node) => (ulong*)(node + _dataOffset);

    // ---- readers ------------------------------------------------------------------------------------

    /// <summary>
    /// The stored node with the longest prefix of the key (<paramref name="keyWords"/>, zero-padded data of a
    /// key whose prefix length is <paramref name="keyPrefix"/>, at most the maximum) among prefixes no longer
    /// than <paramref name="keyPrefix"/>, or null. <paramref name="probed"/> is false, and nothing is looked
    /// up, when the index is inactive (too many distinct lengths): the caller walks the trie.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Longest(ulong* keyWords, uint keyPrefix, out bool probed)
    {
        int* lengths = (int*)Volatile.Read(ref _lengths);
        int count = *lengths;
        probed = count >= 0;
        return count > 0 ? Probe(lengths, count, keyWords, keyPrefix) : null;
    }

    /// <summary>As <see cref="Longest"/>, whether or not the index is active (it is always maintained).</summary>
    public byte* LongestAlways(ulong* keyWords, uint keyPrefix)
    {
        byte* table = (byte*)Volatile.Read(ref _table);
        ulong mask = *(ulong*)table;
        // Every length, longest first, from the table itself: the published list may be the inactive marker.
        for (int length = _lengthCounts.Length - 1; length >= 0; length--)
        {
            if ((uint)length > keyPrefix || Volatile.Read(ref _lengthCounts[length]) == 0) continue;
            byte* node = ProbeOne(table, mask, keyWords, (uint)length, Hash(keyWords, (uint)length));
            if (node != null) return node;
        }
        return null;
    }

    [SkipLocalsInit]
    byte* Probe(int* lengths, int count, ulong* keyWords, uint keyPrefix)
    {
        byte* table = (byte*)Volatile.Read(ref _table);
        ulong mask = *(ulong*)table;
        uint* list = (uint*)(lengths + 1);
        int i = 0;
        while (list[i] > keyPrefix)
            if (++i == count) return null;
        // The lengths are longest first: sums[k] is the summed hash of the key's first k full words, for every
        // k a probed length needs (each word is hashed once for all of them).
        Unsafe.SkipInit(out FullWordSums sums);
        ulong* sum = (ulong*)Unsafe.AsPointer(ref sums);
        uint top = list[i] >> 6;
        ulong acc = 0;
        sum[0] = 0;
        for (uint w = 0; w < top; w++) sum[w + 1] = acc += WordHash(keyWords[w], w);
        for (; i < count; i++)
        {
            uint length = list[i];
            byte* node = ProbeOne(table, mask, keyWords, length, Finish(sum[length >> 6], keyWords, length));
            if (node != null) return node;
        }
        return null;
    }

    /// <summary>Room for the summed word hashes of the longest key (<see cref="MapFactory.MaxLpmDataSize"/> bytes) and the empty sum.</summary>
    [InlineArray(MapFactory.MaxLpmDataSize / 8 + 1)]
    struct FullWordSums
    {
        ulong _first;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong* FilterOf(byte* table, ulong mask) => (ulong*)(table + HeaderBytes + (mask + 1) * SlotBytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* ProbeOne(byte* table, ulong mask, ulong* keyWords, uint length, ulong h)
    {
        uint tag = (uint)(h >> 32);
        // The filter is small enough to stay in cache: a length the key has no entry for costs no table miss.
        ulong bit = tag & (mask * FilterBitsPerSlot + FilterBitsPerSlot - 1);
        if ((Volatile.Read(ref FilterOf(table, mask)[bit >> 6]) & (1UL << (int)(bit & 63))) == 0) return null;
        for (ulong i = h & mask; ; i = (i + 1) & mask)
        {
            byte* slot = table + HeaderBytes + i * SlotBytes;
            nint node = Volatile.Read(ref *(nint*)slot);
            if (node == 0) return null;
            if (node != Tombstone && *(uint*)(slot + 8) == tag && *(uint*)(slot + 12) == length
                && SameHead(DataOf((byte*)node), keyWords, length))
                return (byte*)node;
        }
    }

    // ---- writers (the map's write lock held) --------------------------------------------------------

    /// <summary>The slot holding <paramref name="node"/> (prefix <paramref name="length"/>), or null.</summary>
    byte* SlotOf(byte* node, uint length)
    {
        byte* table = (byte*)_table;
        ulong mask = *(ulong*)table;
        ulong h = Hash(DataOf(node), length);
        for (ulong i = h & mask; ; i = (i + 1) & mask)
        {
            byte* slot = table + HeaderBytes + i * SlotBytes;
            nint n = *(nint*)slot;
            if (n == 0) return null;
            if (n == (nint)node) return slot;
        }
    }

    /// <summary>Adds a stored node (fully built; its key is not in the index).</summary>
    public void Add(byte* node, uint length)
    {
        if ((_used + 1) * 2 > Capacity) Rebuild(_live + 1);
        Place((byte*)_table, node, length, countUsed: true);
        if (_lengthCounts[length]++ == 0)
        {
            _distinct++;
            PublishLengths();
        }
    }

    /// <summary>Points the slot of <paramref name="old"/> at <paramref name="fresh"/> (same prefix and key).</summary>
    public void Replace(byte* old, byte* fresh, uint length)
    {
        byte* slot = SlotOf(old, length);
        if (slot == null) throw new InvalidOperationException("LPM index: the replaced node is not indexed");
        Volatile.Write(ref *(nint*)slot, (nint)fresh);
    }

    /// <summary>Removes a stored node (before the trie retires it or turns it into an intermediate node).</summary>
    public void Remove(byte* node, uint length)
    {
        byte* slot = SlotOf(node, length);
        if (slot == null) throw new InvalidOperationException("LPM index: the removed node is not indexed");
        Volatile.Write(ref *(nint*)slot, Tombstone);
        _live--;
        if (--_lengthCounts[length] == 0)
        {
            _distinct--;
            PublishLengths();
        }
    }

    void Place(byte* table, byte* node, uint length, bool countUsed)
    {
        ulong mask = *(ulong*)table;
        ulong h = Hash(DataOf(node), length);
        for (ulong i = h & mask; ; i = (i + 1) & mask)
        {
            byte* slot = table + HeaderBytes + i * SlotBytes;
            nint n = *(nint*)slot;
            if (n != 0 && n != Tombstone) continue;
            uint tag = (uint)(h >> 32);
            ulong bit = tag & (mask * FilterBitsPerSlot + FilterBitsPerSlot - 1);
            ulong* word = FilterOf(table, mask) + (bit >> 6);
            Volatile.Write(ref *word, *word | (1UL << (int)(bit & 63)));   // before the slot: a reader that finds the slot passed the filter
            *(uint*)(slot + 8) = tag;
            *(uint*)(slot + 12) = length;
            Volatile.Write(ref *(nint*)slot, (nint)node);   // after the tag: readers see both
            if (n == 0 && countUsed) _used++;
            _live++;
            return;
        }
    }

    /// <summary>Moves the live nodes into a new table sized for <paramref name="live"/> nodes and publishes it.</summary>
    void Rebuild(int live)
    {
        uint capacity = BitOperations.RoundUpToPowerOf2((uint)Math.Max(MinCapacity, 2 * (live + 1)));
        if ((long)(live + 1) * 5 > (long)capacity * 2) capacity *= 2;   // at most 40 % full after a rebuild
        byte* old = (byte*)_table;
        byte* fresh = NewTable(capacity);
        ulong oldMask = *(ulong*)old;
        _live = 0;
        for (ulong i = 0; i <= oldMask; i++)
        {
            byte* slot = old + HeaderBytes + i * SlotBytes;
            nint n = *(nint*)slot;
            if (n != 0 && n != Tombstone) Place(fresh, (byte*)n, *(uint*)(slot + 12), countUsed: false);
        }
        _used = _live;
        Volatile.Write(ref _table, (nint)fresh);
        MapEpoch.Retire(old);
    }

    static byte* NewTable(uint capacity)
    {
        byte* table = Native.Alloc(HeaderBytes + (nuint)capacity * SlotBytes + (nuint)capacity * FilterBitsPerSlot / 8, 64);
        *(ulong*)table = capacity - 1;
        return table;
    }

    int* NewLengths()
    {
        int* list = (int*)Native.Alloc((nuint)(4 + 4 * Math.Min(_distinct, MaxProbedLengths + 1)));
        if (_distinct > MaxProbedLengths)
        {
            *list = -1;
            return list;
        }
        int n = 0;
        for (int length = _lengthCounts.Length - 1; length >= 0; length--)
            if (_lengthCounts[length] != 0) ((uint*)(list + 1))[n++] = (uint)length;
        *list = n;
        return list;
    }

    void PublishLengths()
    {
        int* old = (int*)_lengths;
        Volatile.Write(ref _lengths, (nint)NewLengths());
        MapEpoch.Retire(old);
    }

    /// <summary>Frees the table and the length list (the map is gone and no reader can hold them).</summary>
    public void Release()
    {
        Native.Free((void*)_table);
        Native.Free((void*)_lengths);
        _table = _lengths = 0;
    }
}
