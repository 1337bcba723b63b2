using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The lookup structure of <see cref="LpmTrieMap"/> for keys of the full prefix length (what programs pass): a
/// multibit trie with 8-bit strides and path compression, derived from the map's binary trie and kept current
/// by its writers. A lookup reads one table per 8 bits of key consumed, at most ⌈prefix bits / 8⌉ tables
/// and usually two or three (path compression skips bytes every stored prefix shares): its cost is bounded by
/// the key length and does not depend on the number of distinct prefix lengths.
/// <para>
/// A table sits at a byte-aligned bit position <c>pos</c>; every stored prefix under it starts with the table's
/// <c>head</c> (the first <c>pos</c> bits, compared by the lookup: that is the path compression) and is longer
/// than <c>pos</c> (the root, at 0, also holds /0). It has 256 entries, one per value of the key's byte at
/// <c>pos / 8</c>. An entry is two words: <c>best</c>, the longest stored prefix of length in
/// <c>(pos, pos + 8]</c> (the root: <c>[0, 8]</c>) that covers the entry's byte (prefixes are expanded over
/// the entries they cover, not pushed into the tables below, so a change of a short prefix rewrites at most
/// 256 entries of one table); and <c>child</c>: null, a table for the longer prefixes under the entry, or, when
/// there is exactly one, the stored trie node itself (tagged <see cref="LeafTag"/>), which the lookup compares
/// whole. The lookup keeps the last <c>best</c> it saw and stops at a null child, a leaf or a table whose head
/// the key does not start with.
/// </para>
/// <para>
/// Concurrency: the protocol of <see cref="LpmPrefixIndex"/> (same version word, so a lookup is one
/// snapshot, and the same rule 1). Every word a reader loads is a stored node that covers the entry it sits
/// in, or a table whose head the reader checks: a torn read can only yield a covering prefix. Entries are
/// changed in place by single releasing stores; a new table is filled before the store that links it;
/// unlinked tables are retired through <see cref="MapEpoch"/>. A table's position and head never change.
/// </para>
/// <para>Table layout: <c>+0 u32</c> pos, <c>+4 u32</c> occupied entries (writers only), <c>+8</c> head
/// (the data stride), entries after the header (rounded to 64 bytes): <c>+0</c> best, <c>+8</c> child.</para>
/// </summary>
internal unsafe struct LpmStrideIndex
{
    /// <summary>The tag of a child word that is a stored trie node (nodes are 8-aligned), not a table.</summary>
    internal const ulong LeafTag = 1;
    internal const int EntryBytes = 16, Entries = 256, HeadAt = 8;

    readonly int _dataOffset, _prefixOffset, _flagsOffset, _words;
    readonly byte** _trieRoot;
    readonly byte* _root;
    readonly int _headerBytes;
    int _tables;

    /// <summary>An empty structure for trie nodes whose data (zero-padded to <paramref name="dataStride"/> bytes) starts <paramref name="dataOffset"/> bytes in.</summary>
    public LpmStrideIndex(int dataOffset, int prefixOffset, int dataStride, byte** trieRoot)
    {
        _dataOffset = dataOffset;
        _prefixOffset = prefixOffset;
        _flagsOffset = prefixOffset + 4;
        _words = dataStride / 8;
        _trieRoot = trieRoot;
        _headerBytes = (HeadAt + dataStride + 63) & ~63;
        _tables = 0;
        _root = null;
        _root = NewTable(0, null);
    }

    /// <summary>The bytes of one table.</summary>
    int TableBytes => _headerBytes + Entries * EntryBytes;

    /// <summary>The native bytes of the structure (its tables; leaves are the trie's own nodes).</summary>
    public long Bytes => (long)Volatile.Read(ref _tables) * TableBytes;

    /// <summary>The number of tables (root included).</summary>
    public int Tables => Volatile.Read(ref _tables);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong* DataOf(byte* node) => (ulong*)(node + _dataOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    uint PrefixOf(byte* node) => *(uint*)(node + _prefixOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint PosOf(byte* table) => *(uint*)table;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong* HeadOf(byte* table) => (ulong*)(table + HeadAt);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint ByteAt(ulong* words, uint pos) => ((byte*)words)[pos >> 3];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* EntryOf(byte* table, uint index) => table + _headerBytes + index * EntryBytes;

    // ---- reader -------------------------------------------------------------------------------------

    /// <summary>
    /// The stored node with the longest prefix of the key (<paramref name="keyWords"/>: zero-padded data of a key
    /// whose prefix length is the map's maximum), or null.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Longest<M>(ulong* keyWords) where M : IIndexMemory
    {
        byte* table = _root;
        byte* best = null;
        uint pos = 0;
        while (true)
        {
            byte* entry = table + _headerBytes + ByteAt(keyWords, pos) * EntryBytes;
            byte* b = (byte*)M.Load64((ulong*)entry);
            ulong child = M.Load64((ulong*)(entry + 8));
            if (b != null) best = b;
            if (child == 0) return best;
            if ((child & LeafTag) != 0)
            {
                byte* leaf = (byte*)(child & ~LeafTag);
                return LpmPrefixIndex.SameHead(DataOf(leaf), keyWords, PrefixOf(leaf)) ? leaf : best;
            }
            table = (byte*)child;
            uint next = PosOf(table);
            // A table right below its parent's stride skips no bits: the key matched its head on the way there.
            if (next != pos + 8 && !LpmPrefixIndex.SameHead(HeadOf(table), keyWords, next)) return best;
            pos = next;
        }
    }

    // ---- writers (the map's write lock held, inside its version bump) ---------------------------------

    byte* NewTable(uint pos, ulong* head)
    {
        byte* table = Native.Alloc((nuint)TableBytes, 64);
        *(uint*)table = pos;
        if (head != null) Buffer.MemoryCopy(head, table + HeadAt, _words * 8, _words * 8);
        _tables++;
        return table;
    }

    void RetireTable(byte* table)
    {
        _tables--;
        MapEpoch.Retire(table);
    }

    static void SetBest<M>(byte* table, byte* entry, byte* node) where M : IIndexMemory
    {
        bool was = *(ulong*)entry != 0 || *(ulong*)(entry + 8) != 0;
        M.Store64((ulong*)entry, (ulong)node);
        bool now = node != null || *(ulong*)(entry + 8) != 0;
        if (was != now) *(int*)(table + 4) += now ? 1 : -1;
    }

    static void SetChild<M>(byte* table, byte* entry, ulong child) where M : IIndexMemory
    {
        bool was = *(ulong*)entry != 0 || *(ulong*)(entry + 8) != 0;
        M.Store64((ulong*)(entry + 8), child);
        bool now = child != 0 || *(ulong*)entry != 0;
        if (was != now) *(int*)(table + 4) += now ? 1 : -1;
    }

    /// <summary>The leading bits two zero-padded word arrays share, at most <paramref name="limit"/>.</summary>
    static uint Common(ulong* a, ulong* b, uint limit)
    {
        uint matched = 0;
        for (int w = 0; matched < limit; w++)
        {
            ulong x = a[w] ^ b[w];
            if (x != 0)
            {
                matched += (uint)BitOperations.LeadingZeroCount(BinaryPrimitives.ReverseEndianness(x));
                break;
            }
            matched += 64;
        }
        return Math.Min(matched, limit);
    }

    /// <summary>The first entry and the number of entries a prefix of length <paramref name="length"/> covers in a table at <paramref name="pos"/>.</summary>
    static (uint First, uint Count) Span(ulong* data, uint pos, uint length)
    {
        int free = (int)(pos + 8 - length);   // 0..8 bits of the byte left open
        uint count = 1u << free;
        return (ByteAt(data, pos) & (0xFFu << free) & 0xFF, count);
    }

    /// <summary>Adds a stored node (fully built and linked into the trie; its prefix was not stored).</summary>
    public void Add<M>(byte* node, uint length) where M : IIndexMemory => Insert<M>(_root, node, length);

    void Insert<M>(byte* table, byte* node, uint length) where M : IIndexMemory
    {
        ulong* data = DataOf(node);
        while (true)
        {
            uint pos = PosOf(table);
            if (length <= pos + 8)
            {
                // Expanded over the entries it covers, where no longer prefix of this stride does.
                var (first, count) = Span(data, pos, length);
                for (uint i = first; i < first + count; i++)
                {
                    byte* entry = EntryOf(table, i);
                    byte* b = *(byte**)entry;
                    if (b == null || PrefixOf(b) < length) SetBest<M>(table, entry, node);
                }
                return;
            }
            byte* at = EntryOf(table, ByteAt(data, pos));
            ulong child = *(ulong*)(at + 8);
            if (child == 0)
            {
                SetChild<M>(table, at, (ulong)node | LeafTag);
                return;
            }
            if ((child & LeafTag) != 0)
            {
                // A second prefix under the entry: a table at the last byte boundary both pass, holding both.
                byte* leaf = (byte*)(child & ~LeafTag);
                uint shorter = Math.Min(PrefixOf(leaf), length);
                byte* split = NewTable(Math.Min(Common(DataOf(leaf), data, shorter), shorter - 1) & ~7u, data);
                Insert<DirectIndexMemory>(split, leaf, PrefixOf(leaf));
                Insert<DirectIndexMemory>(split, node, length);
                SetChild<M>(table, at, (ulong)split);
                return;
            }
            byte* below = (byte*)child;
            uint belowPos = PosOf(below);
            if (length > belowPos && LpmPrefixIndex.SameHead(HeadOf(below), data, belowPos))
            {
                table = below;
                continue;
            }
            // The prefix leaves the path the table below compresses: a table where they part holds both.
            uint parted = Math.Min(Common(HeadOf(below), data, belowPos), length - 1) & ~7u;
            byte* fork = NewTable(parted, data);
            SetChild<DirectIndexMemory>(fork, EntryOf(fork, ByteAt(HeadOf(below), parted)), (ulong)below);
            Insert<DirectIndexMemory>(fork, node, length);
            SetChild<M>(table, at, (ulong)fork);
            return;
        }
    }

    /// <summary>Points every word that holds <paramref name="old"/> at <paramref name="fresh"/> (same prefix, same data).</summary>
    public void Replace<M>(byte* old, byte* fresh, uint length) where M : IIndexMemory
    {
        ulong* data = DataOf(old);
        byte* table = _root;
        while (true)
        {
            uint pos = PosOf(table);
            if (length <= pos + 8)
            {
                var (first, count) = Span(data, pos, length);
                for (uint i = first; i < first + count; i++)
                {
                    byte* entry = EntryOf(table, i);
                    if (*(byte**)entry == old) SetBest<M>(table, entry, fresh);
                }
                return;
            }
            byte* at = EntryOf(table, ByteAt(data, pos));
            ulong child = *(ulong*)(at + 8);
            if (child == ((ulong)old | LeafTag))
            {
                SetChild<M>(table, at, (ulong)fresh | LeafTag);
                return;
            }
            if (child == 0 || (child & LeafTag) != 0) throw new InvalidOperationException("LPM stride index: the replaced node is not indexed");
            table = (byte*)child;
        }
    }

    /// <summary>Removes a stored node (before the trie unlinks it), then folds tables left with one entry into their parent's.</summary>
    public void Remove<M>(byte* node, uint length) where M : IIndexMemory
    {
        ulong* data = DataOf(node);
        // The tables on the way and the entries taken in them (at most one table per byte of data, and the root).
        int depth = 0;
        byte** tables = stackalloc byte*[_words * 8 + 1];
        byte** entries = stackalloc byte*[_words * 8 + 1];
        byte* table = _root;
        while (true)
        {
            uint pos = PosOf(table);
            if (length <= pos + 8)
            {
                // Entries that held it fall back to the next shorter stored prefix of this stride (or of any length, in the root).
                byte* shorter = length == 0 ? null : LongestStored(data, length - 1);
                if (shorter != null && table != _root && PrefixOf(shorter) <= pos) shorter = null;
                var (first, count) = Span(data, pos, length);
                for (uint i = first; i < first + count; i++)
                {
                    byte* entry = EntryOf(table, i);
                    if (*(byte**)entry == node) SetBest<M>(table, entry, shorter);
                }
                break;
            }
            byte* at = EntryOf(table, ByteAt(data, pos));
            ulong child = *(ulong*)(at + 8);
            if (child == ((ulong)node | LeafTag))
            {
                SetChild<M>(table, at, 0);
                break;
            }
            if (child == 0 || (child & LeafTag) != 0) throw new InvalidOperationException("LPM stride index: the removed node is not indexed");
            tables[depth] = table;
            entries[depth++] = at;
            table = (byte*)child;
        }
        // Fold: an empty table goes (its parent's entry may then empty in turn); a table left with one child and
        // no best is replaced by that child (a table checks its whole head, a leaf its whole prefix).
        while (depth > 0)
        {
            int occupied = *(int*)(table + 4);
            byte* parent = tables[--depth], at = entries[depth];
            if (occupied == 0)
            {
                SetChild<M>(parent, at, 0);
                RetireTable(table);
                table = parent;
                continue;
            }
            if (occupied == 1 && SoleChild(table) is var only && only != 0)
            {
                SetChild<M>(parent, at, only);
                RetireTable(table);
            }
            break;
        }
    }

    /// <summary>The child of a table's only occupied entry when that entry has no best, else 0.</summary>
    ulong SoleChild(byte* table)
    {
        for (uint i = 0; i < Entries; i++)
        {
            byte* entry = EntryOf(table, i);
            if (*(ulong*)entry != 0) return 0;
            if (*(ulong*)(entry + 8) is var child && child != 0) return child;
        }
        return 0;
    }

    /// <summary>The stored trie node with the longest prefix of <paramref name="words"/> no longer than <paramref name="limit"/>, or null.</summary>
    byte* LongestStored(ulong* words, uint limit)
    {
        byte* found = null;
        for (byte* n = *_trieRoot; n != null;)
        {
            uint prefix = PrefixOf(n);
            if (prefix > limit || !LpmPrefixIndex.SameHead(DataOf(n), words, prefix)) break;
            if ((*(uint*)(n + _flagsOffset) & 1) == 0) found = n;
            if (prefix == limit) break;
            uint bit = (ByteAt(words, prefix) >> (7 - (int)(prefix & 7))) & 1;
            n = ((byte**)n)[bit];
        }
        return found;
    }

    /// <summary>Frees every table (the map is gone and no reader can hold them).</summary>
    public void Release()
    {
        var pending = new Stack<nint>();
        pending.Push((nint)_root);
        while (pending.TryPop(out nint t))
        {
            byte* table = (byte*)t;
            for (uint i = 0; i < Entries; i++)
                if (*(ulong*)(EntryOf(table, i) + 8) is var child && child != 0 && (child & LeafTag) == 0) pending.Push((nint)child);
            Native.Free(table);
        }
    }
}
