using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_LPM_TRIE: longest-prefix match over keys laid out as the kernel's
/// <c>struct bpf_lpm_trie_key</c>: a u32 prefix length in host order, then <c>key_size - 4</c> data bytes
/// whose most significant bit is bit 7 of byte 0 (network order for addresses).
/// <para>
/// The source of truth is the kernel's structure (kernel/bpf/lpm_trie.c): a path-compressed binary trie in
/// which each node holds a prefix, its value, and two children chosen by the first bit after the prefix;
/// "intermediate" nodes only join two subtrees. Updates, deletes, <c>BPF_NOEXIST</c>/<c>BPF_EXIST</c>,
/// max_entries, the errno values and next-key iteration (the kernel's post-order) are the trie's.
/// Walking it costs one dependent, usually cache-missing node load per level: about 18 levels at
/// 100,000 tubular bindings.
/// </para>
/// <para>
/// Lookups (program and userspace) never walk it. Full-length keys (what programs pass) read the stride index
/// (<see cref="LpmStrideIndex"/>): a path-compressed multibit trie of 8-bit strides whose cost is bounded by
/// the key length, not by the number of distinct prefix lengths. Keys with a shorter prefix length, and
/// full-length keys of a map with at most <see cref="LinearSearchMaxLengths"/> lengths over more than
/// <see cref="StrideTablesBeyondCache"/> stride tables (where one to four hash probes touch less memory), read
/// the prefix index (<see cref="LpmPrefixIndex"/>): every stored node in one open-addressing hash table keyed
/// by (prefix length, the first prefix-length bits of its data), probed longest first with few lengths, in
/// binary search over markers with more. Both point at the trie's own nodes, so a lookup returns the same
/// value pointer as the walk; writers keep both current.
/// </para>
/// <para>
/// Concurrency: readers take no lock; writers serialise on the map's lock. Writers build nodes fully,
/// publish them with one pointer store, update the index (a slot's pointer is replaced or tombstoned in
/// place; a grown or compacted table and a changed length list are published whole) and only then retire
/// replaced nodes, old tables and old length lists through <see cref="MapEpoch"/>, so a value pointer a
/// reader obtained stays valid for its read section. A probe judges a node by its own prefix length, and a
/// lookup checks the map's version (odd while a writer changes the map) before and after: it is
/// linearizable, and after <see cref="LpmPrefixIndex.MaxReadAttempts"/> overtaken attempts it still returns
/// a covering prefix (<see cref="OvertakenLookups"/>; <see cref="LpmPrefixIndex"/> has the protocol).
/// Lookups allocate nothing.
/// </para>
/// <para>Node layout: <c>+0/+8</c> children, <c>+16 u32</c> prefixlen, <c>+20 u32</c> flags, <c>+24</c> data, then the value (8-aligned).</para>
/// </summary>
public sealed unsafe class LpmTrieMap : BpfMap
{
    const int Child0Offset = 0, PrefixOffset = 16, FlagsOffset = 20, DataOffset = 24;
    const uint Intermediate = 1;

    readonly int _dataSize;
    readonly int _dataStride;
    readonly int _nodeSize;
    readonly uint _maxPrefix;
    readonly Lock _writeLock = new();
    readonly NodePool _pool;
    readonly byte** _rootLink;     // native, so writers can hold its address like any child link
    // A struct field, not an object: a lookup reaches the published table and length list with one load fewer.
    LpmPrefixIndex _index;
    LpmStrideIndex _stride;
    int _count;
    long _overtaken;
    // Writers set it after each change; a lookup may read either value: both structures hold every prefix.
    bool _probeLengths;

    internal LpmTrieMap(MapDefinition definition) : base(definition)
    {
        _dataSize = KeySize - 4;
        _dataStride = Native.Round8(_dataSize);
        _nodeSize = DataOffset + _dataStride + Native.Round8(ValueSize);
        _maxPrefix = (uint)_dataSize * 8;
        _rootLink = (byte**)Native.Alloc((nuint)sizeof(byte*));
        _pool = new NodePool(_nodeSize);
        _index = new LpmPrefixIndex(DataOffset, PrefixOffset, _dataStride, _maxPrefix, _rootLink);
        _stride = new LpmStrideIndex(DataOffset, PrefixOffset, _dataStride, _rootLink);
    }

    /// <summary>The longest prefix a key may carry: 8 × (key_size − 4).</summary>
    public int MaxPrefixLength => (int)_maxPrefix;

    /// <summary>The number of prefixes stored (intermediate nodes not counted).</summary>
    public int Count => Volatile.Read(ref _count);

    // ---- node access --------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte** ChildLink(byte* n, uint bit) => (byte**)(n + Child0Offset) + bit;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte* Child(byte* n, uint bit) => HashMap.Load(ChildLink(n, bit));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Prefix(byte* n) => *(uint*)(n + PrefixOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool IsIntermediate(byte* n) => (Volatile.Read(ref *(uint*)(n + FlagsOffset)) & Intermediate) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* ValueOf(byte* n) => n + DataOffset + _dataStride;

    /// <summary>Bit <paramref name="index"/> of the data, counting from the most significant bit of byte 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Bit(byte* data, uint index) => (uint)(data[index >> 3] >> (7 - (int)(index & 7))) & 1;

    /// <summary>
    /// The number of leading bits <paramref name="n"/>'s prefix shares with the key, at most min(both prefix
    /// lengths). The key's data is passed as zero-padded 8-byte words (<see cref="PadKey"/>) and node data is
    /// zero-padded too, so every comparison is a whole word.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Match(byte* n, uint keyPrefix, ulong* keyWords)
    {
        uint limit = Math.Min(Prefix(n), keyPrefix);
        ulong* nodeWords = (ulong*)(n + DataOffset);
        uint matched = 0;
        for (int w = 0; matched < limit; w++)
        {
            ulong x = nodeWords[w] ^ keyWords[w];
            if (x != 0)
            {
                matched += (uint)BitOperations.LeadingZeroCount(BinaryPrimitives.ReverseEndianness(x));
                break;
            }
            matched += 64;
        }
        return Math.Min(matched, limit);
    }

    /// <summary>
    /// The key's data as <see cref="KeyWords"/> little-endian 8-byte words, the last one zero-padded. It reads
    /// only the key's own bytes: a partial last word comes from the 8 bytes ending at the key's end, shifted.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void PadKey(byte* data, ulong* words)
    {
        int full = _dataSize >> 3, rem = _dataSize & 7;
        for (int i = 0; i < full; i++) words[i] = Unsafe.ReadUnaligned<ulong>(data + 8 * i);
        if (rem == 0) return;
        if (full > 0)
        {
            words[full] = Unsafe.ReadUnaligned<ulong>(data + _dataSize - 8) >> (8 * (8 - rem));
            return;
        }
        ulong tail = 0;
        for (int i = 0; i < rem; i++) tail |= (ulong)data[i] << (8 * i);
        words[0] = tail;
    }

    /// <summary>
    /// <see cref="PadKey"/> by single-byte loads, for keys a program passes: a program builds its key on its stack,
    /// usually byte by byte (a packed struct, a byte-wise copy of an address), and calls the lookup right after.
    /// An 8-byte load that spans several byte stores still in the store buffer cannot be forwarded from them and
    /// waits until they reach the cache: measured on the dispatcher, about 14 ns per lookup, against 3–4 ns for
    /// these loads (docs/perf.md, "LPM dispatch against Linux's JIT"). Each byte load is forwarded from its store.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void PadKeyBytewise(byte* data, ulong* words)
    {
        int full = _dataSize >> 3, rem = _dataSize & 7;
        for (int i = 0; i < full; i++, data += 8)
            words[i] = Gather4(data) | (ulong)Gather4(data + 4) << 32;
        if (rem == 0) return;
        // The last 1 to 7 bytes: 4, then 2, then 1 of them, as present.
        ulong tail = 0;
        int shift = 0;
        if ((rem & 4) != 0)
        {
            tail = Gather4(data);
            data += 4;
            shift = 32;
        }
        if ((rem & 2) != 0)
        {
            tail |= (ulong)(data[0] | (uint)data[1] << 8) << shift;
            data += 2;
            shift += 16;
        }
        if ((rem & 1) != 0) tail |= (ulong)data[0] << shift;
        words[full] = tail;
    }

    /// <summary>Four bytes, little-endian, by four byte loads (two independent halves: a short dependency chain).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Gather4(byte* p) => (p[0] | (uint)p[1] << 8) | ((uint)p[2] << 16 | (uint)p[3] << 24);

    /// <summary>The most 8-byte words of key data any LPM map has (a fixed-size stack buffer on lookups).</summary>
    const int MaxKeyWords = MapFactory.MaxLpmDataSize / 8;

    /// <summary>The number of 8-byte words of key data (at most <see cref="MaxKeyWords"/>).</summary>
    int KeyWords => _dataStride / 8;

    // ---- lookup -------------------------------------------------------------------------------------

    /// <summary>
    /// The node holding the longest stored prefix of the key, or null: the index, in one snapshot of the map (the index's version did not change across it, see
    /// <see cref="LpmPrefixIndex"/>), or after <see cref="LpmPrefixIndex.MaxReadAttempts"/> overtaken attempts
    /// the last answer, a stored prefix that covers the key.
    /// </summary>
    /// <param name="key">The key (prefix length, then data).</param>
    /// <param name="programKey">A program's key, read by single bytes (<see cref="PadKeyBytewise"/>); a constant at every call site.</param>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    byte* Longest<M>(byte* key, bool programKey) where M : IIndexMemory
    {
        uint keyPrefix = *(uint*)key;
        // A struct local, not stackalloc: no stack-cookie check on every lookup.
        Unsafe.SkipInit(out KeyWordBuffer buffer);
        ulong* words = (ulong*)Unsafe.AsPointer(ref buffer);
        if (programKey) PadKeyBytewise(key + 4, words);
        else PadKey(key + 4, words);
        for (int attempt = 1; ; attempt++)
        {
            ulong version = _index.BeginRead<M>();
            // A shorter key bounds the match, which the stride index's expanded entries cannot tell: the prefix index,
            // which probes only lengths up to the key's. Full-length keys (what programs pass): the stride index,
            // unless the prefix index is cheaper for this shape (see UpdateLookupChoice).
            byte* found = keyPrefix != _maxPrefix || _probeLengths ? _index.Longest<M>(words, keyPrefix) : _stride.Longest<M>(words);
            if (_index.Validate<M>(version)) return found;
            if (attempt == LpmPrefixIndex.MaxReadAttempts)
            {
                Interlocked.Increment(ref _overtaken);
                return found;
            }
        }
    }

    /// <summary>How many times a lookup overtaken by writers probes again before it keeps its (covering) answer.</summary>
    public const int MaxLookupAttempts = LpmPrefixIndex.MaxReadAttempts;

    /// <summary>
    /// Lookups that kept their answer after <see cref="MaxLookupAttempts"/> attempts overtaken by
    /// writers: each returned a stored prefix that covers its key, but perhaps not the longest of any one
    /// state (see docs/embedding.md, "Threads"). Zero unless writers keep the map busy.
    /// </summary>
    public long OvertakenLookups => Interlocked.Read(ref _overtaken);

    /// <summary>
    /// <c>bpf_map_lookup_elem</c> with the index's shared memory accessed through <typeparamref name="M"/>:
    /// the protocol test runs the lookup that programs run over a memory it schedules.
    /// </summary>
    internal ulong LookupElem<M>(ulong keyPtr) where M : IIndexMemory
    {
        if (*(uint*)keyPtr > _maxPrefix) return 0;
        byte* n = Longest<M>((byte*)keyPtr, programKey: true);
        return n == null ? 0 : (ulong)ValueOf(n);
    }

    /// <summary>The padded data of the longest key (<see cref="MaxKeyWords"/> words).</summary>
    [InlineArray(MaxKeyWords)]
    struct KeyWordBuffer
    {
        ulong _first;
    }

    /// <summary>The node holding the longest stored prefix of the key, found by walking the trie (longest_prefix_match).</summary>
    byte* Walk(byte* data, ulong* words, uint keyPrefix)
    {
        byte* found = null;
        for (byte* n = HashMap.Load(_rootLink); n != null;)
        {
            uint matched = Match(n, keyPrefix, words);
            if (matched == _maxPrefix)
            {
                if (!IsIntermediate(n)) found = n;
                break;
            }
            uint prefix = Prefix(n);
            if (matched < prefix) break;
            if (!IsIntermediate(n)) found = n;
            if (prefix >= keyPrefix) break;
            n = Child(n, Bit(data, prefix));
        }
        return found;
    }

    /// <summary>
    /// <c>bpf_map_lookup_elem</c> by the trie walk alone, whatever the index's state: the lookup before the
    /// index existed, kept for tests (the index must agree with it) and benchmarks (before/after in one run).
    /// Call inside a <see cref="MapEpoch"/> read section, like <see cref="LookupElem"/>.
    /// </summary>
    [SkipLocalsInit]
    public ulong LookupElemByWalk(ulong keyPtr)
    {
        byte* key = (byte*)keyPtr;
        uint keyPrefix = *(uint*)key;
        if (keyPrefix > _maxPrefix) return 0;
        ulong* words = stackalloc ulong[MaxKeyWords];
        PadKey(key + 4, words);
        byte* n = Walk(key + 4, words, keyPrefix);
        return n == null ? 0 : (ulong)ValueOf(n);
    }

    /// <summary>
    /// <c>bpf_map_lookup_elem</c> by the prefix index alone, without the version check (one attempt): for
    /// tests. Call inside a <see cref="MapEpoch"/> read section.
    /// </summary>
    [SkipLocalsInit]
    public ulong LookupElemByIndex(ulong keyPtr)
    {
        byte* key = (byte*)keyPtr;
        uint keyPrefix = *(uint*)key;
        if (keyPrefix > _maxPrefix) return 0;
        ulong* words = stackalloc ulong[MaxKeyWords];
        PadKey(key + 4, words);
        byte* n = _index.Longest<DirectIndexMemory>(words, keyPrefix);
        return n == null ? 0 : (ulong)ValueOf(n);
    }

    /// <summary>
    /// Above this many stride tables (16 MB of them), a map with at most <see cref="LinearSearchMaxLengths"/> prefix
    /// lengths answers full-length lookups from the prefix index: its one to four probes touch fewer cache lines
    /// than a walk through tables that no longer fit in cache (measured: docs/perf.md, "LPM_TRIE").
    /// </summary>
    public const int StrideTablesBeyondCache = 4096;

    /// <summary>True while full-length lookups use the prefix index rather than the stride index.</summary>
    public bool LookupsProbeLengths => Volatile.Read(ref _probeLengths);

    // Writers only, after a change: which structure full-length lookups read.
    void UpdateLookupChoice() =>
        Volatile.Write(ref _probeLengths, _index.ListedLengths <= LinearSearchMaxLengths && _stride.Tables > StrideTablesBeyondCache);

    /// <summary>
    /// <c>bpf_map_lookup_elem</c> of a full-length key by the stride index alone, whichever structure the map reads,
    /// without the version check (one attempt): for tests and benchmarks (perf's <c>lpm structures</c>). A key
    /// of another prefix length finds nothing. Call inside a <see cref="MapEpoch"/> read section.
    /// </summary>
    [SkipLocalsInit]
    public ulong LookupElemByStride(ulong keyPtr)
    {
        byte* key = (byte*)keyPtr;
        if (*(uint*)key != _maxPrefix) return 0;
        ulong* words = stackalloc ulong[MaxKeyWords];
        PadKey(key + 4, words);
        byte* n = _stride.Longest<DirectIndexMemory>(words);
        return n == null ? 0 : (ulong)ValueOf(n);
    }

    /// <summary>The prefix index itself (the protocol test).</summary>
    internal ref LpmPrefixIndex Index => ref _index;

    /// <summary>The number of distinct prefix lengths stored.</summary>
    public int DistinctPrefixLengths => _index.DistinctLengths;

    /// <summary>
    /// The most distinct prefix lengths that lookups probe one by one, longest first; with more they search the
    /// lengths in binary over markers (at most ⌈log2(lengths + 1)⌉ probes).
    /// </summary>
    public const int LinearSearchMaxLengths = LpmPrefixIndex.LinearSearchMaxLengths;

    /// <summary>The marker entries the prefix index keeps for its binary search (zero with at most <see cref="LinearSearchMaxLengths"/> lengths).</summary>
    public int IndexMarkers => ReadIndex(static i => i.Markers);

    /// <summary>
    /// The native bytes the map holds: the trie's node chunks (stored and intermediate nodes, 64-byte strides)
    /// and the prefix index (table, filter, markers). For comparison with the kernel's <c>memlock</c> figure.
    /// </summary>
    public long MemoryBytes => ReadIndex(static i => i.Bytes) + _stride.Bytes + _pool.Bytes;

    /// <summary>The stride index's tables (each 256 two-word entries and a header; see <see cref="LpmStrideIndex"/>).</summary>
    public int StrideTables => _stride.Tables;

    /// <summary>The prefix index's slot count (it grows with the entries and compacts deleted slots).</summary>
    public int IndexCapacity => ReadIndex(static i => i.Capacity);

    // The index's native tables go with the map's memory: read them inside a read-side section, once the map is
    // seen not disposed there (its memory then outlives the section).
    T ReadIndex<T>(Func<LpmPrefixIndex, T> read)
    {
        using var section = MapEpoch.Protect();
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return read(_index);
    }

    /// <inheritdoc />
    [SkipLocalsInit]
    public override ulong LookupElem(ulong keyPtr)
    {
        if (*(uint*)keyPtr > _maxPrefix) return 0;
        byte* n = Longest<DirectIndexMemory>((byte*)keyPtr, programKey: true);
        return n == null ? 0 : (ulong)ValueOf(n);
    }

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => Store<DirectIndexMemory>((byte*)keyPtr, (byte*)valuePtr, flags);

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => Remove<DirectIndexMemory>((byte*)keyPtr);

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        if ((flags & UpdateFlags.Lock) != 0) return -Errno.EINVAL;
        if (*(uint*)key > _maxPrefix) return -Errno.ENOENT;
        byte* n = Longest<DirectIndexMemory>(key, programKey: false);
        if (n == null) return -Errno.ENOENT;
        Native.Copy(ValueOf(n), value, ValueSize);
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags) => Store<DirectIndexMemory>(key, value, flags);

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => Remove<DirectIndexMemory>(key);

    // ---- writers (trie_update_elem / trie_delete_elem) ----------------------------------------------

    byte* NewNode(uint prefix, byte* data, byte* value)
    {
        byte* n = _pool.Alloc();
        *(uint*)(n + PrefixOffset) = prefix;
        Native.Copy(data, n + DataOffset, _dataSize);
        if (value != null) Native.Copy(value, ValueOf(n), ValueSize);
        else *(uint*)(n + FlagsOffset) = Intermediate;
        return n;
    }

    /// <summary>trie_update_elem; the index's shared memory through <typeparamref name="M"/> (the protocol test records it).</summary>
    internal int Store<M>(byte* key, byte* value, ulong flags) where M : IIndexMemory
    {
        if (flags > UpdateFlags.Exist) return -Errno.EINVAL;
        uint keyPrefix = *(uint*)key;
        if (keyPrefix > _maxPrefix) return -Errno.EINVAL;
        byte* data = key + 4;
        ulong* words = stackalloc ulong[KeyWords];
        PadKey(data, words);
        lock (_writeLock)
        {
            byte** slot = _rootLink;
            byte* node;
            uint matched = 0;
            while ((node = *slot) != null)
            {
                matched = Match(node, keyPrefix, words);
                uint prefix = Prefix(node);
                if (prefix != matched || prefix == keyPrefix || prefix == _maxPrefix) break;
                slot = ChildLink(node, Bit(data, prefix));
            }

            bool exact = node != null && Prefix(node) == matched && Prefix(node) == keyPrefix;
            bool adds = !exact || IsIntermediate(node);
            if (exact && !IsIntermediate(node) && flags == UpdateFlags.NoExist) return -Errno.EEXIST;
            if (adds && flags == UpdateFlags.Exist) return -Errno.ENOENT;
            if (adds && _count >= MaxEntries) return -Errno.ENOSPC;
            // Nodes are charged when allocated, as the kernel's trie_update_elem allocates them: the new one, and a
            // join when the two prefixes diverge. Each retired node returns its charge (Uncharge below).
            if (!ChargeElement((node != null && !exact && matched != keyPrefix ? 2 : 1) * (long)_nodeSize)) return -Errno.ENOMEM;

            byte* fresh = NewNode(keyPrefix, data, value);
            // Lookups from here to the end of the change probe again (see LpmPrefixIndex, rule 2).
            _index.BeginWrite<M>();
            try
            {
                Link<M>(slot, node, fresh, data, matched, keyPrefix, exact, adds);
            }
            finally
            {
                _index.EndWrite<M>();
            }
            if (exact)
            {
                _pool.Retire(node);
                UnchargeElement(_nodeSize);
            }
            if (adds) Volatile.Write(ref _count, _count + 1);
            UpdateLookupChoice();
            return 0;
        }
    }

    /// <summary>Links <paramref name="fresh"/> into the trie at <paramref name="slot"/> (where the walk stopped at <paramref name="node"/>) and into the index.</summary>
    void Link<M>(byte** slot, byte* node, byte* fresh, byte* data, uint matched, uint keyPrefix, bool exact, bool adds) where M : IIndexMemory
    {
        if (node == null)
        {
            HashMap.Publish(slot, fresh);
        }
        else if (exact)
        {
            // Replace the node (or fill the intermediate one): same position, same children.
            *ChildLink(fresh, 0) = *ChildLink(node, 0);
            *ChildLink(fresh, 1) = *ChildLink(node, 1);
            HashMap.Publish(slot, fresh);
            // The index stops pointing at the old node before it is retired.
            if (adds)
            {
                _index.Add<M>(fresh, keyPrefix);
                _stride.Add<M>(fresh, keyPrefix);
            }
            else
            {
                _index.Replace<M>(node, fresh, keyPrefix);
                _stride.Replace<M>(node, fresh, keyPrefix);
            }
            return;
        }
        else if (matched == keyPrefix)
        {
            // The new prefix is a prefix of node's: node becomes its child.
            *ChildLink(fresh, Bit(node + DataOffset, matched)) = node;
            HashMap.Publish(slot, fresh);
        }
        else
        {
            // They diverge after `matched` bits: join them under an intermediate node.
            byte* join = NewNode(matched, node + DataOffset, null);
            if (Bit(data, matched) != 0)
            {
                *ChildLink(join, 0) = node;
                *ChildLink(join, 1) = fresh;
            }
            else
            {
                *ChildLink(join, 0) = fresh;
                *ChildLink(join, 1) = node;
            }
            HashMap.Publish(slot, join);
        }
        _index.Add<M>(fresh, keyPrefix);
        _stride.Add<M>(fresh, keyPrefix);
    }

    /// <summary>trie_delete_elem; the index's shared memory through <typeparamref name="M"/> (the protocol test records it).</summary>
    internal int Remove<M>(byte* key) where M : IIndexMemory
    {
        uint keyPrefix = *(uint*)key;
        if (keyPrefix > _maxPrefix) return -Errno.EINVAL;
        byte* data = key + 4;
        ulong* words = stackalloc ulong[KeyWords];
        PadKey(data, words);
        lock (_writeLock)
        {
            byte** trim = _rootLink, trimParent = _rootLink;
            byte* parent = null, node;
            uint matched = 0;
            while ((node = *trim) != null)
            {
                matched = Match(node, keyPrefix, words);
                uint prefix = Prefix(node);
                if (prefix != matched || prefix == keyPrefix) break;
                parent = node;
                trimParent = trim;
                trim = ChildLink(node, Bit(data, prefix));
            }
            if (node == null || Prefix(node) != keyPrefix || Prefix(node) != matched || IsIntermediate(node))
                return -Errno.ENOENT;
            Volatile.Write(ref _count, _count - 1);
            _index.BeginWrite<M>();
            try
            {
                Unlink<M>(node, keyPrefix, parent, trim, trimParent);
            }
            finally
            {
                _index.EndWrite<M>();
            }
            UpdateLookupChoice();
            return 0;
        }
    }

    /// <summary>Takes the stored <paramref name="node"/> out of the index and the trie, and retires what the trie no longer links.</summary>
    void Unlink<M>(byte* node, uint keyPrefix, byte* parent, byte** trim, byte** trimParent) where M : IIndexMemory
    {
        // Out of the index first: no reader finds the node through it once the trie retires or empties it.
        _index.Remove<M>(node, keyPrefix);
        _stride.Remove<M>(node, keyPrefix);

        byte* c0 = *ChildLink(node, 0), c1 = *ChildLink(node, 1);
        if (c0 != null && c1 != null)
        {
            // Two children: the node stays as an intermediate join (its value is no longer reachable).
            Volatile.Write(ref *(uint*)(node + FlagsOffset), Intermediate);
            return;
        }
        if (parent != null && IsIntermediate(parent) && c0 == null && c1 == null)
        {
            // A leaf under a join: the join is no longer needed, its other child takes its place.
            byte* sibling = *ChildLink(parent, 0) == node ? *ChildLink(parent, 1) : *ChildLink(parent, 0);
            HashMap.Publish(trimParent, sibling);
            _pool.Retire(parent);
            _pool.Retire(node);
            UnchargeElement(2 * (long)_nodeSize);
            return;
        }
        HashMap.Publish(trim, c0 != null ? c0 : c1);
        _pool.Retire(node);
        UnchargeElement(_nodeSize);
    }

    // ---- iteration (trie_get_next_key: post-order) --------------------------------------------------

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey)
    {
        byte* root = HashMap.Load(_rootLink);
        if (root == null) return -Errno.ENOENT;
        byte* searchRoot = root;
        if (key != null && *(uint*)key <= _maxPrefix)
        {
            uint keyPrefix = *(uint*)key;
            byte* data = key + 4;
            ulong* words = stackalloc ulong[KeyWords];
            PadKey(data, words);
            var stack = new List<nint>();
            byte* node = root;
            uint matched = 0;
            while (node != null)
            {
                stack.Add((nint)node);
                matched = Match(node, keyPrefix, words);
                uint prefix = Prefix(node);
                if (prefix != matched || prefix == keyPrefix) break;
                node = Child(node, Bit(data, prefix));
            }
            if (node != null && Prefix(node) == keyPrefix && Prefix(node) == matched && !IsIntermediate(node))
            {
                // The key's node found: the next one in post-order is the leftmost of a right
                // sibling subtree, or the first non-intermediate ancestor.
                searchRoot = null;
                for (int i = stack.Count - 1; i > 0; i--)
                {
                    byte* p = (byte*)stack[i - 1];
                    byte* n = (byte*)stack[i];
                    if (Child(p, 0) == n && Child(p, 1) is var right && right != null)
                    {
                        searchRoot = right;
                        break;
                    }
                    if (!IsIntermediate(p))
                    {
                        CopyKey(p, nextKey);
                        return 0;
                    }
                }
                if (searchRoot == null) return -Errno.ENOENT;
            }
        }
        // The leftmost non-intermediate node of the subtree, deepest first.
        byte* next = null;
        for (byte* n = searchRoot; n != null;)
        {
            if (IsIntermediate(n))
            {
                n = Child(n, 0);
                continue;
            }
            next = n;
            n = Child(n, 0);
            if (n == null) n = Child(next, 1);
        }
        if (next == null) return -Errno.ENOENT;
        CopyKey(next, nextKey);
        return 0;
    }

    void CopyKey(byte* n, byte* key)
    {
        *(uint*)key = Prefix(n);
        Native.Copy(n + DataOffset, key + 4, _dataSize);
    }

    /// <inheritdoc />
    internal override bool FindValue(ulong address, out ulong start, out int length)
    {
        start = 0;
        length = 0;
        var pending = new Stack<nint>();
        if (HashMap.Load(_rootLink) is var root && root != null) pending.Push((nint)root);
        while (pending.TryPop(out nint node))
        {
            byte* n = (byte*)node;
            ulong value = (ulong)(n + DataOffset + _dataStride);
            if ((*(uint*)(n + FlagsOffset) & Intermediate) == 0 && Better(address, value, ValueSize, ref start, ref length)) return true;
            for (uint bit = 0; bit < 2; bit++)
                if (Child(n, bit) is var child && child != null) pending.Push((nint)child);
        }
        return length != 0;
    }

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        _pool.Release();
        _index.Release();
        _stride.Release();
        Native.Free(_rootLink);
    }
}
