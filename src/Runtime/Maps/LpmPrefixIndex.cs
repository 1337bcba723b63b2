using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The lookup index of <see cref="LpmTrieMap"/>: every stored (non-intermediate) trie node, hashed by its
/// prefix length and the first prefix-length bits of its data, in one open-addressing table, plus the sorted
/// list of the distinct prefix lengths present. With at most <see cref="LinearSearchMaxLengths"/> lengths a
/// longest-prefix lookup probes the table once per length, longest first, and the first hit is the answer;
/// with more it searches the lengths in binary, over markers the table also holds (LpmIndexMarkers.cs), so
/// its cost is at most ⌈log2(lengths + 1)⌉ probes (8 at 129 lengths) and never walks the trie. The trie
/// stays the source of truth; the index holds pointers to the trie's own nodes, so a hit returns the same
/// value memory as the trie walk.
/// <para>
/// Concurrency. Writers run under the map's write lock. Readers take no lock. Two rules make a lookup
/// correct under any interleaving (tests/Maps/LpmProtocolModelTests.cs enumerates them all):
/// </para>
/// <para>
/// 1. A probe judges a node by the node itself. A slot is <c>{node, tag, length}</c>; the reader loads the
/// node pointer (acquiring), uses the slot's tag only to skip slots cheaply, never reads the slot's length
/// (it is for rebuilds), and compares the node's own prefix length and data, which never change while a
/// reader can reach the node (nodes are built before they are published and freed through
/// <see cref="MapEpoch"/>). A slot deleted and reused by another prefix
/// between the reader's loads can therefore only make the probe miss, never return a node under a length
/// that is not its own (the old slot also held the length, which the reader trusted: a /32 came back for a
/// key it does not cover).
/// </para>
/// <para>
/// 2. A lookup is one snapshot (a sequence lock). The root block's version word is odd while a writer changes
/// the trie or the index and is bumped (a full fence) before and after; a lookup reads it before and after
/// its probes (<see cref="BeginRead{M}"/>, <see cref="Validate{M}"/>) and probes again when it changed, so
/// its answer is the longest prefix of one state between two updates: it is linearizable. After
/// <see cref="MaxReadAttempts"/> overtaken attempts (a writer stalled inside its change, or writers back to
/// back) the lookup keeps the last answer, which by rule 1 is still a prefix that covers the key and was
/// stored during the lookup, and counts it (<see cref="LpmTrieMap.OvertakenLookups"/>): lookups never wait
/// for writers.
/// </para>
/// <para>
/// Slots never move: growing or compacting builds a new table, publishes it, and retires the old one through
/// <see cref="MapEpoch"/>, as a new length list retires the old list. The trie's nodes are retired by the
/// trie after the index stopped pointing at them, so no reader can obtain a freed node from either.
/// </para>
/// <para>
/// Native layout. Root block (64 bytes, its own cache line): <c>+0</c> table, <c>+8</c> length list,
/// <c>+16 u64</c> version. Table: 64-byte header (<c>+0 u64</c> mask), then 16-byte slots (<c>+0</c> node,
/// <c>+8 u32</c> tag, <c>+12 u32</c> length), then a one-hash filter of 4 bits per slot (the bit
/// <c>tag mod bits</c> of every node ever placed in this table is set): a probe whose bit is clear stops without touching the slots. Bits are
/// never cleared; a rebuilt table starts a new filter from the live nodes. Length list: <c>+0 i32</c> count,
/// then u32 lengths, longest first. A slot's entry is a trie node or a marker record (same layout where the
/// probe looks: prefix length, flags, data); a marker's best prefix is a stored node of its own bits, so
/// rule 1 holds for it too: it covers every key the marker matches.
/// </para>
/// </summary>
internal unsafe partial struct LpmPrefixIndex
{
    /// <summary>
    /// The most distinct prefix lengths a lookup probes one by one, longest first (no markers are kept); with
    /// more, it searches them in binary (at most ⌈log2(lengths + 1)⌉ probes) over the markers.
    /// </summary>
    public const int LinearSearchMaxLengths = 4;

    internal const int HeaderBytes = 64, SlotBytes = 16, MinCapacity = 16;
    internal const uint FilterBitsPerSlot = 4;   // at least 8 filter bits per stored node (the table is at most half full)
    internal const nint Tombstone = 1;
    const ulong K1 = 0x9E3779B97F4A7C15, K2 = 0xC2B2AE3D27D4EB4F;

    /// <summary>How many times a lookup overtaken by writers probes again before it keeps its (covering) answer.</summary>
    public const int MaxReadAttempts = 8;

    internal const int TableAt = 0, LengthsAt = 8, VersionAt = 16;
    const int RootBytes = 64;

    readonly int _dataOffset, _prefixOffset;
    readonly ulong _seed;
    readonly byte** _trieRoot;        // the trie's root link (writers: markers come from the trie)
    readonly int _dataStride;
    readonly NodePool _markerPool;
    int[]?[] _paths;                  // writers only: per stored length, the marker lengths on its search path (null without markers)
    int _markers;                     // marker records in the table
    bool _searching;                  // writers only: the table holds markers (the published list is longer than a scan)
    readonly bool[] _listed;          // writers only: the lengths in the published list (while searching, one whose last prefix went stays listed)
    readonly int[] _lengthCounts;     // writers only: stored nodes per prefix length
    // Native, not fields of the map object: the published words have fixed addresses (the protocol test
    // replays stores by address) and their own cache line, which writers dirty on every update.
    readonly byte* _root;
    int _live, _used;                 // writers only: slots holding a node, slots holding a node or a tombstone
    int _distinct;

    /// <summary>
    /// An empty index for nodes whose data (zero-padded to 8 bytes) starts <paramref name="dataOffset"/> bytes
    /// in and whose prefix length is the u32 at <paramref name="prefixOffset"/>.
    /// </summary>
    public LpmPrefixIndex(int dataOffset, int prefixOffset, int dataStride, uint maxPrefix, byte** trieRoot)
    {
        _dataOffset = dataOffset;
        _prefixOffset = prefixOffset;
        _dataStride = dataStride;
        _trieRoot = trieRoot;
        _markerPool = new NodePool(dataOffset + dataStride);
        _paths = new int[]?[maxPrefix + 1];
        _listed = new bool[maxPrefix + 1];
        _seed = (ulong)Random.Shared.NextInt64();
        _lengthCounts = new int[maxPrefix + 1];
        _root = Native.Alloc(RootBytes, 64);
        new Span<byte>(_root, RootBytes).Clear();
        *(ulong*)(_root + TableAt) = (ulong)NewTable(MinCapacity);
        *(ulong*)(_root + LengthsAt) = (ulong)NewLengths();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* TableOf<M>() where M : IIndexMemory => (byte*)M.Load64((ulong*)(_root + TableAt));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    int* LengthsOf<M>() where M : IIndexMemory => (int*)M.Load64((ulong*)(_root + LengthsAt));

    /// <summary>The root block (the protocol test reads the published words through it).</summary>
    internal byte* Root => _root;

    /// <summary>The number of distinct prefix lengths stored.</summary>
    public int DistinctLengths => Volatile.Read(ref _distinct);

    /// <summary>The number of lengths in the published list (lookups scan it when it holds at most <see cref="LinearSearchMaxLengths"/>).</summary>
    public int ListedLengths => *LengthsOf<DirectIndexMemory>();

    /// <summary>The number of marker entries in the table (zero with at most <see cref="LinearSearchMaxLengths"/> lengths).</summary>
    public int Markers => Volatile.Read(ref _markers);

    /// <summary>The native bytes of the index: root block, table (slots and filter), length list, marker records' chunks.</summary>
    public long Bytes => RootBytes + HeaderBytes + (long)Capacity * SlotBytes + (long)Capacity * FilterBitsPerSlot / 8
        + 4 + 4L * Math.Max(*LengthsOf<DirectIndexMemory>(), 0) + _markerPool.Bytes;

    /// <summary>The table's slot count (tests check that it grows and compacts).</summary>
    public int Capacity => (int)(*(ulong*)TableOf<DirectIndexMemory>() + 1);

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
    internal ulong Hash(ulong* words, uint length)
    {
        ulong sum = 0;
        uint full = length >> 6;
        for (uint i = 0; i < full; i++) sum += WordHash(words[i], i);
        return Finish(sum, words, length);
    }

    /// <summary>True when the first <paramref name="length"/> bits of both word arrays are equal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool SameHead(ulong* a, ulong* b, uint length)
    {
        uint full = length >> 6;
        for (uint i = 0; i < full; i++)
            if (a[i] != b[i]) return false;
        return (length & 63) == 0 || ((a[full] ^ b[full]) & HeadMask(length & 63)) == 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong* DataOf(byte* node) => (ulong*)(node + _dataOffset);

    // ---- readers ------------------------------------------------------------------------------------

    /// <summary>
    /// The stored node with the longest prefix of the key (<paramref name="keyWords"/>, zero-padded data of a
    /// key whose prefix length is <paramref name="keyPrefix"/>, at most the maximum) among prefixes no longer
    /// than <paramref name="keyPrefix"/>, or null: a longest-first scan of the lengths when there are at most
    /// <see cref="LinearSearchMaxLengths"/>, a binary search over them (with markers) above.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Longest<M>(ulong* keyWords, uint keyPrefix) where M : IIndexMemory
    {
        int* lengths = LengthsOf<M>();
        int count = *lengths;   // a list is immutable once published
        if (count == 0) return null;
        return count <= LinearSearchMaxLengths ? Scan<M>(lengths, count, keyWords, keyPrefix) : Search<M>(lengths, count, keyWords, keyPrefix);
    }

    /// <summary>The version a lookup starts from (odd while a writer is changing the map).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong BeginRead<M>() where M : IIndexMemory => M.Load64((ulong*)(_root + VersionAt));

    /// <summary>True when no writer changed the map since <see cref="BeginRead{M}"/> returned <paramref name="version"/>: the lookup saw one state.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Validate<M>(ulong version) where M : IIndexMemory
    {
        M.ReadBarrier();
        return (version & 1) == 0 && M.Load64((ulong*)(_root + VersionAt)) == version;
    }

    /// <summary>
    /// The best stored prefix an entry the key matched stands for: a stored node stands for itself, a marker for
    /// its best matching prefix (a stored prefix of the marker's own bits, so it covers the key too; rule 1).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* BestOf<M>(byte* entry) where M : IIndexMemory =>
        (M.Load32((uint*)(entry + _prefixOffset + 4)) & MarkerFlag) != 0 ? (byte*)M.Load64((ulong*)(entry + MarkerBestAt)) : entry;

    /// <summary>Fills <paramref name="sum"/>[k] with the summed hash of the key's first k full words, for every k up to <paramref name="longest"/>'s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void SumWords(ulong* sum, ulong* keyWords, uint longest)
    {
        uint top = longest >> 6;
        ulong acc = 0;
        sum[0] = 0;
        for (uint w = 0; w < top; w++) sum[w + 1] = acc += WordHash(keyWords[w], w);
    }

    /// <summary>Few lengths: probe them longest first; the first entry the key matches decides (with markers present it stands for its best prefix, and nothing longer matched).</summary>
    [SkipLocalsInit]
    byte* Scan<M>(int* lengths, int count, ulong* keyWords, uint keyPrefix) where M : IIndexMemory
    {
        byte* table = TableOf<M>();
        ulong mask = *(ulong*)table;
        uint* list = (uint*)(lengths + 1);
        int i = 0;
        while (list[i] > keyPrefix)
            if (++i == count) return null;
        // Each full word is hashed once for all the lengths probed.
        Unsafe.SkipInit(out FullWordSums sums);
        ulong* sum = (ulong*)Unsafe.AsPointer(ref sums);
        SumWords(sum, keyWords, list[i]);
        for (; i < count; i++)
        {
            uint length = list[i];
            byte* entry = ProbeOne<M>(table, mask, keyWords, length, Finish(sum[length >> 6], keyWords, length));
            if (entry != null) return BestOf<M>(entry);
        }
        return null;
    }

    /// <summary>
    /// Many lengths: binary search on them (Waldvogel et al., "Scalable high speed IP routing lookups", 1997).
    /// The list is longest first; a hit at a length (a stored prefix or a marker) means the answer is that
    /// entry's best prefix or longer, so the search goes to the longer half; a miss sends it to the shorter
    /// half. Markers make the hits on the way to every stored prefix exist (see the writers). Lengths above
    /// the key's own prefix length count as misses, which keeps the tree's shape.
    /// </summary>
    [SkipLocalsInit]
    byte* Search<M>(int* lengths, int count, ulong* keyWords, uint keyPrefix) where M : IIndexMemory
    {
        byte* table = TableOf<M>();
        ulong mask = *(ulong*)table;
        uint* list = (uint*)(lengths + 1);
        Unsafe.SkipInit(out FullWordSums sums);
        ulong* sum = (ulong*)Unsafe.AsPointer(ref sums);
        SumWords(sum, keyWords, Math.Min(list[0], keyPrefix));
        byte* best = null;
        int lo = 0, hi = count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            uint length = list[mid];
            byte* entry = length > keyPrefix ? null : ProbeOne<M>(table, mask, keyWords, length, Finish(sum[length >> 6], keyWords, length));
            if (entry != null)
            {
                best = BestOf<M>(entry);
                hi = mid - 1;
            }
            else lo = mid + 1;
        }
        return best;
    }

    /// <summary>Room for the summed word hashes of the longest key (<see cref="MapFactory.MaxLpmDataSize"/> bytes) and the empty sum.</summary>
    [InlineArray(MapFactory.MaxLpmDataSize / 8 + 1)]
    struct FullWordSums
    {
        ulong _first;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong* FilterOf(byte* table, ulong mask) => (ulong*)(table + HeaderBytes + (mask + 1) * SlotBytes);

    /// <summary>
    /// One probe: the node of prefix length <paramref name="length"/> whose data starts with the key's first
    /// <paramref name="length"/> bits, or null. The node's own prefix length and data decide (rule 1 of the
    /// class comment); the slot's tag, which a writer may already have changed for another node, only skips.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* ProbeOne<M>(byte* table, ulong mask, ulong* keyWords, uint length, ulong h) where M : IIndexMemory
    {
        uint tag = (uint)(h >> 32);
        // The filter is small enough to stay in cache: a length the key has no entry for costs no table miss.
        ulong bit = tag & (mask * FilterBitsPerSlot + FilterBitsPerSlot - 1);
        if ((M.Load64(FilterOf(table, mask) + (bit >> 6)) & (1UL << (int)(bit & 63))) == 0) return null;
        for (ulong i = h & mask; ; i = (i + 1) & mask)
        {
            byte* slot = table + HeaderBytes + i * SlotBytes;
            byte* node = (byte*)M.Load64((ulong*)slot);
            if (node == null) return null;
            if (node != (byte*)Tombstone && M.Load32((uint*)(slot + 8)) == tag
                && M.Load32((uint*)(node + _prefixOffset)) == length && SameHead(DataOf(node), keyWords, length))
                return node;
        }
    }

    // ---- writers (the map's write lock held) --------------------------------------------------------

    /// <summary>Makes the version odd: lookups from here until <see cref="EndWrite{M}"/> probe again.</summary>
    public void BeginWrite<M>() where M : IIndexMemory => M.Bump((ulong*)(_root + VersionAt));

    /// <summary>Makes the version even again: the change is complete.</summary>
    public void EndWrite<M>() where M : IIndexMemory => M.Bump((ulong*)(_root + VersionAt));

    /// <summary>The slot holding <paramref name="node"/> (prefix <paramref name="length"/>), or null.</summary>
    byte* SlotOf(byte* node, uint length)
    {
        byte* table = TableOf<DirectIndexMemory>();
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

    /// <summary>Adds a stored node (fully built and linked into the trie; its key is not in the index).</summary>
    public void Add<M>(byte* node, uint length) where M : IIndexMemory
    {
        PlaceGrowing<M>(node, length);
        if (_lengthCounts[length]++ == 0)
        {
            _distinct++;
            if (!_listed[length])
            {
                Reshape<M>(null);
                return;
            }
        }
        if (_searching)
        {
            AddMarkers<M>(node, length);
            Refresh<M>(node, length, null, node);
        }
    }

    /// <summary>Points the slot of <paramref name="old"/> at <paramref name="fresh"/> (same prefix and key, same trie children), and the markers that stood for it.</summary>
    public void Replace<M>(byte* old, byte* fresh, uint length) where M : IIndexMemory
    {
        byte* slot = SlotOf(old, length);
        if (slot == null) throw new InvalidOperationException("LPM index: the replaced node is not indexed");
        M.Store64((ulong*)slot, (ulong)fresh);
        if (_searching) Refresh<M>(fresh, length, old, fresh);
    }

    /// <summary>Removes a stored node (before the trie retires it or turns it into an intermediate node; its children are still linked).</summary>
    public void Remove<M>(byte* node, uint length) where M : IIndexMemory
    {
        byte* slot = SlotOf(node, length);
        if (slot == null) throw new InvalidOperationException("LPM index: the removed node is not indexed");
        M.Store64((ulong*)slot, (ulong)Tombstone);
        _live--;
        // While the lengths are searched in binary a length whose last prefix goes stays in the list (probes there
        // find markers only): the search tree keeps its shape, so deleting and inserting the only prefix of a
        // length (a default route, say) costs no rebuild. The next rebuild for a new length drops it.
        if (--_lengthCounts[length] == 0)
        {
            _distinct--;
            if (!_searching)
            {
                Reshape<M>(node);
                return;
            }
        }
        if (_searching)
        {
            RemoveMarkers<M>(node, length);
            Refresh<M>(node, length, node, length == 0 ? null : LongestStored(DataOf(node), length - 1));
        }
    }

    /// <summary>Places an entry in the published table, first growing (or compacting) it when it would be more than half full.</summary>
    void PlaceGrowing<M>(byte* entry, uint length) where M : IIndexMemory
    {
        if ((_used + 1) * 2 > Capacity) Rebuild<M>(_live + 1);
        Place<M>(TableOf<DirectIndexMemory>(), entry, length, countUsed: true);
    }

    void Place<M>(byte* table, byte* node, uint length, bool countUsed) where M : IIndexMemory
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
            ulong set = 1UL << (int)(bit & 63);
            if ((*word & set) == 0) M.Store64(word, *word | set);   // before the slot: a reader that finds the slot passed the filter
            M.Store32((uint*)(slot + 8), tag);
            M.Store32((uint*)(slot + 12), length);   // for rebuilds; readers take the length from the node (rule 1)
            M.Store64((ulong*)slot, (ulong)node);   // after the tag: a reader that sees the node sees its tag
            if (n == 0 && countUsed) _used++;
            _live++;
            return;
        }
    }

    /// <summary>Moves the live nodes into a new table sized for <paramref name="live"/> nodes and publishes it.</summary>
    void Rebuild<M>(int live) where M : IIndexMemory
    {
        uint capacity = BitOperations.RoundUpToPowerOf2((uint)Math.Max(MinCapacity, 2 * (live + 1)));
        if ((long)(live + 1) * 5 > (long)capacity * 2) capacity *= 2;   // at most 40 % full after a rebuild
        byte* old = TableOf<DirectIndexMemory>();
        byte* fresh = NewTable(capacity);
        ulong oldMask = *(ulong*)old;
        _live = 0;
        for (ulong i = 0; i <= oldMask; i++)
        {
            byte* slot = old + HeaderBytes + i * SlotBytes;
            nint n = *(nint*)slot;
            if (n != 0 && n != Tombstone) Place<M>(fresh, (byte*)n, *(uint*)(slot + 12), countUsed: false);
        }
        _used = _live;
        M.Store64((ulong*)(_root + TableAt), (ulong)fresh);
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
        int* list = (int*)Native.Alloc((nuint)(4 + 4 * _distinct));
        int n = 0;
        for (int length = _lengthCounts.Length - 1; length >= 0; length--)
        {
            _listed[length] = _lengthCounts[length] != 0;
            if (_listed[length]) ((uint*)(list + 1))[n++] = (uint)length;
        }
        *list = n;
        return list;
    }

    void PublishLengths<M>() where M : IIndexMemory
    {
        int* old = LengthsOf<DirectIndexMemory>();
        M.Store64((ulong*)(_root + LengthsAt), (ulong)NewLengths());
        MapEpoch.Retire(old);
    }

    /// <summary>Frees the table and the length list (the map is gone and no reader can hold them).</summary>
    public void Release()
    {
        Native.Free(TableOf<DirectIndexMemory>());
        Native.Free(LengthsOf<DirectIndexMemory>());
        Native.Free(_root);
        _markerPool.Release();
    }
}
