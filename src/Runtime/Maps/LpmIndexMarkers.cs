using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The markers of <see cref="LpmPrefixIndex"/>'s binary search on prefix lengths (more than
/// <see cref="LpmPrefixIndex.LinearSearchMaxLengths"/> distinct lengths).
/// <para>
/// The search over the lengths, longest first, is a fixed binary tree given the list. For a stored prefix
/// of length <c>L</c>, every length on the way to <c>L</c> at which the search must go longer (a shorter
/// length it passes) holds a marker: the prefix's first bits at that length. So a key that matches a stored
/// prefix hits every probe on the way to it. A hit on a marker whose longer side holds no match for the key
/// must still answer, so a marker keeps its best matching prefix (the longest stored prefix of its own bits,
/// the marker's length included): a hit records its entry's best prefix and the last hit's is the answer.
/// </para>
/// <para>
/// Record layout (the trie node's, so the table's hashing and probes take both): <c>+0</c> best prefix (a
/// stored trie node or null, the only word that changes while readers can see the record), <c>+8 u32</c>
/// reference count (writers: the stored prefixes whose path it is on), the prefix length at the node's
/// prefix offset, <see cref="LpmPrefixIndex.MarkerFlag"/> in the flags word after it, the data zero-padded
/// past the length. A record and a stored node of the same bits and length may both be in the table: the
/// record's best prefix is then that node, so a probe finding either decides the same.
/// </para>
/// <para>
/// Writers keep the best prefixes current: inserting, replacing or deleting a stored prefix <c>P</c> changes
/// the best prefix of the markers at lengths ≥ |P| that extend P; they are found from the first stored
/// prefixes below P in the trie (the cost of such an update grows with those, as for a short prefix over
/// many longer ones without prefixes in between). A new length changes the tree: the table is built again
/// from the trie and published whole (a length whose prefixes all go stays in the list until then).
/// </para>
/// </summary>
internal unsafe partial struct LpmPrefixIndex
{
    /// <summary>The flag bit of a marker record (the trie's own flag, 1, marks intermediate nodes).</summary>
    internal const uint MarkerFlag = 2;

    internal const int MarkerBestAt = 0, MarkerRefsAt = 8;

    // The trie's node layout the writers walk: two child links at +0 and +8; the flags follow the prefix.
    const int ChildrenAt = 0;
    const uint IntermediateFlag = 1;

    uint PrefixOf(byte* node) => *(uint*)(node + _prefixOffset);

    uint FlagsOf(byte* node) => *(uint*)(node + _prefixOffset + 4);

    static byte* ChildOf(byte* node, uint bit) => ((byte**)(node + ChildrenAt))[bit];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Bit(ulong* words, uint index) => (uint)(((byte*)words)[index >> 3] >> (7 - (int)(index & 7))) & 1;

    /// <summary>The stored trie node with the longest prefix of <paramref name="words"/> no longer than <paramref name="limit"/>, or null.</summary>
    byte* LongestStored(ulong* words, uint limit)
    {
        byte* found = null;
        for (byte* n = *_trieRoot; n != null;)
        {
            uint prefix = PrefixOf(n);
            if (prefix > limit || !SameHead(DataOf(n), words, prefix)) break;
            if ((FlagsOf(n) & IntermediateFlag) == 0) found = n;
            if (prefix == limit) break;
            n = ChildOf(n, Bit(words, prefix));
        }
        return found;
    }

    /// <summary>The marker record of length <paramref name="length"/> for the first bits of <paramref name="words"/> in <paramref name="table"/>, or null.</summary>
    byte* FindMarker(byte* table, ulong* words, uint length)
    {
        ulong mask = *(ulong*)table;
        for (ulong i = Hash(words, length) & mask; ; i = (i + 1) & mask)
        {
            byte* entry = *(byte**)(table + HeaderBytes + i * SlotBytes);
            if (entry == null) return null;
            if (entry != (byte*)Tombstone && (FlagsOf(entry) & MarkerFlag) != 0 && PrefixOf(entry) == length && SameHead(DataOf(entry), words, length))
                return entry;
        }
    }

    byte* NewMarker(ulong* words, uint length, byte* best)
    {
        byte* record = _markerPool.Alloc();
        *(ulong*)(record + MarkerBestAt) = (ulong)best;
        *(uint*)(record + MarkerRefsAt) = 1;
        *(uint*)(record + _prefixOffset) = length;
        *(uint*)(record + _prefixOffset + 4) = MarkerFlag;
        ulong* data = DataOf(record);
        // Only the marker's own bits: probes and rebuilds hash and compare the first `length` bits.
        for (uint w = 0; w < length >> 6; w++) data[w] = words[w];
        if ((length & 63) != 0) data[length >> 6] = words[length >> 6] & HeadMask(length & 63);
        return record;
    }

    /// <summary>The markers on the path of a new stored node: referenced again, or created with their best prefix from the trie.</summary>
    void AddMarkers<M>(byte* node, uint length) where M : IIndexMemory
    {
        ulong* words = DataOf(node);
        foreach (int m in _paths[length]!)
        {
            byte* record = FindMarker(TableOf<DirectIndexMemory>(), words, (uint)m);
            if (record != null)
            {
                (*(uint*)(record + MarkerRefsAt))++;
                continue;
            }
            PlaceGrowing<M>(NewMarker(words, (uint)m, LongestStored(words, (uint)m)), (uint)m);
            _markers++;
        }
    }

    /// <summary>The markers on the path of a removed stored node: released, and taken out when no stored prefix needs them.</summary>
    void RemoveMarkers<M>(byte* node, uint length) where M : IIndexMemory
    {
        ulong* words = DataOf(node);
        foreach (int m in _paths[length]!)
        {
            byte* record = FindMarker(TableOf<DirectIndexMemory>(), words, (uint)m);
            if (record == null) throw new InvalidOperationException("LPM index: a marker on a stored prefix's path is missing");
            if (--*(uint*)(record + MarkerRefsAt) != 0) continue;
            M.Store64((ulong*)SlotOf(record, (uint)m), (ulong)Tombstone);
            _live--;
            _markers--;
            _markerPool.Retire(record);
        }
    }

    /// <summary>
    /// The best prefix of every marker at a length ≥ <paramref name="length"/> that extends
    /// <paramref name="top"/>'s bits (at <paramref name="top"/>'s trie position): set to <paramref name="to"/>
    /// where it was <paramref name="from"/>, or, with <paramref name="from"/> null (an insert), where it was
    /// shorter than <paramref name="length"/>.
    /// <para>
    /// Only the first stored prefix D on each branch below <paramref name="top"/> is visited: a marker longer
    /// than D that extends D has D or a longer prefix as its best (no change), and a marker shorter than D on
    /// the path of anything below D has D's own first bits. So the markers to look at are D's first bits at
    /// each listed length from <paramref name="length"/> up to D's.
    /// </para>
    /// </summary>
    void Refresh<M>(byte* top, uint length, byte* from, byte* to) where M : IIndexMemory
    {
        if (ChildOf(top, 0) == null && ChildOf(top, 1) == null) return;   // a leaf (most updates): nothing below
        var pending = new Stack<nint>();
        for (uint bit = 0; bit < 2; bit++)
            if (ChildOf(top, bit) is var c && c != null) pending.Push((nint)c);
        byte* table = TableOf<DirectIndexMemory>();
        while (pending.TryPop(out nint next))
        {
            byte* n = (byte*)next;
            if ((FlagsOf(n) & IntermediateFlag) != 0)
            {
                for (uint bit = 0; bit < 2; bit++)
                    if (ChildOf(n, bit) is var c && c != null) pending.Push((nint)c);
                continue;
            }
            for (uint m = length, end = PrefixOf(n); m < end; m++)
            {
                if (!_listed[m]) continue;
                byte* record = FindMarker(table, DataOf(n), m);
                if (record == null) continue;
                byte* best = *(byte**)(record + MarkerBestAt);
                if (from != null ? best == from : best == null || PrefixOf(best) < length) M.Store64((ulong*)(record + MarkerBestAt), (ulong)to);
            }
        }
    }

    /// <summary>
    /// The length list changed: the search tree's shape with it. Builds a new table from the trie's stored
    /// nodes (but <paramref name="excluded"/>, being removed), with the markers of the new shape when it has
    /// more than <see cref="LinearSearchMaxLengths"/> lengths, and publishes it with the new list.
    /// </summary>
    void Reshape<M>(byte* excluded) where M : IIndexMemory
    {
        bool search = _distinct > LinearSearchMaxLengths;
        if (!search && !_searching)
        {
            PublishLengths<M>();
            return;
        }
        int* list = NewLengths();
        Array.Clear(_paths);
        if (search) SetPaths((uint*)(list + 1), *list);

        byte* old = TableOf<DirectIndexMemory>();
        byte* fresh = NewTable(MinCapacity);
        _live = _used = _markers = 0;
        // Depth first over the trie; `stored` holds the stored nodes above the current one (all its stored prefixes).
        var pending = new Stack<(nint Node, int Depth)>();
        var stored = new List<nint>();
        if (*_trieRoot != null) pending.Push(((nint)(*_trieRoot), 0));
        while (pending.TryPop(out var item))
        {
            byte* n = (byte*)item.Node;
            stored.RemoveRange(item.Depth, stored.Count - item.Depth);
            if ((FlagsOf(n) & IntermediateFlag) == 0 && n != excluded)
            {
                uint length = PrefixOf(n);
                fresh = PlaceUnpublished(fresh, n, length);
                if (search)
                    foreach (int m in _paths[length]!)
                    {
                        byte* record = FindMarker(fresh, DataOf(n), (uint)m);
                        if (record != null)
                        {
                            (*(uint*)(record + MarkerRefsAt))++;
                            continue;
                        }
                        byte* best = null;
                        for (int i = stored.Count - 1; i >= 0 && best == null; i--)
                            if (PrefixOf((byte*)stored[i]) <= (uint)m) best = (byte*)stored[i];
                        fresh = PlaceUnpublished(fresh, NewMarker(DataOf(n), (uint)m, best), (uint)m);
                        _markers++;
                    }
                stored.Add((nint)n);
            }
            for (uint bit = 0; bit < 2; bit++)
                if (ChildOf(n, bit) is var c && c != null) pending.Push(((nint)c, stored.Count));
        }
        _searching = search;
        // One state or the other for a reader that validates (rule 2); both tables stay readable until retired.
        M.Store64((ulong*)(_root + TableAt), (ulong)fresh);
        int* oldList = LengthsOf<DirectIndexMemory>();
        M.Store64((ulong*)(_root + LengthsAt), (ulong)list);
        MapEpoch.Retire(oldList);
        ulong oldMask = *(ulong*)old;
        for (ulong i = 0; i <= oldMask; i++)
        {
            byte* entry = *(byte**)(old + HeaderBytes + i * SlotBytes);
            if (entry != null && entry != (byte*)Tombstone && (FlagsOf(entry) & MarkerFlag) != 0) _markerPool.Retire(entry);
        }
        MapEpoch.Retire(old);
    }

    /// <summary>The marker lengths of every length's search path, for the list (longest first) the readers will search.</summary>
    void SetPaths(uint* list, int count)
    {
        var path = new List<int>();
        for (int j = 0; j < count; j++)
        {
            path.Clear();
            int lo = 0, hi = count - 1;
            while (true)
            {
                int mid = (lo + hi) >> 1;   // as LpmPrefixIndex.Search
                if (mid == j) break;
                if (mid > j)
                {
                    path.Add((int)list[mid]);   // a shorter length: the search must hit it to go on to list[j]
                    hi = mid - 1;
                }
                else lo = mid + 1;
            }
            _paths[list[j]] = [.. path];
        }
    }

    /// <summary>Places an entry in a table no reader can see yet, growing it (a new table, the old one freed) when it would be more than half full.</summary>
    byte* PlaceUnpublished(byte* table, byte* entry, uint length)
    {
        ulong mask = *(ulong*)table;
        if ((ulong)(_used + 1) * 2 > mask + 1)
        {
            byte* bigger = NewTable((uint)(mask + 1) * 2);
            _live = 0;
            for (ulong i = 0; i <= mask; i++)
            {
                byte* slot = table + HeaderBytes + i * SlotBytes;
                nint n = *(nint*)slot;
                if (n != 0) Place<DirectIndexMemory>(bigger, (byte*)n, *(uint*)(slot + 12), countUsed: false);
            }
            _used = _live;
            Native.Free(table);
            table = bigger;
        }
        Place<DirectIndexMemory>(table, entry, length, countUsed: true);
        return table;
    }
}
