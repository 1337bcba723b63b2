using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>
/// The LPM_TRIE prefix index (per-length hash probes) against a reference model and against the trie walk,
/// on both of its searches (longest first, and binary search over markers above
/// <see cref="LpmTrieMap.LinearSearchMaxLengths"/> distinct lengths); its growth and compaction; its
/// memory; readers racing writers that change which prefix length matches.
/// </summary>
[TestFixture, NonParallelizable]
public unsafe class LpmIndexTests
{
    /// <summary>A model entry: prefix length and the data bytes with every bit past the prefix cleared.</summary>
    static string ModelKey(int length, ReadOnlySpan<byte> data)
    {
        var masked = data.ToArray();
        for (int bit = length; bit < masked.Length * 8; bit++) masked[bit >> 3] &= (byte)~(0x80 >> (bit & 7));
        return $"{length}/{Convert.ToHexString(masked)}";
    }

    static byte[] Key(int length, byte[] data) => [.. BitConverter.GetBytes(length), .. data];

    /// <summary>
    /// Random inserts (all three update flags), replaces and deletes, with random bits past the prefix and a
    /// small max_entries; after each step a random lookup (random key prefix length, sometimes above the
    /// maximum) through the program helper, userspace, the trie walk alone and the index alone, all compared
    /// with a linear model. <paramref name="lengthSet"/> distinct lengths are used (always 0 and the maximum
    /// among them); above <see cref="LpmTrieMap.LinearSearchMaxLengths"/> the index switches between its
    /// two searches as lengths come and go, and every insert, replace and delete keeps the markers' best prefixes.
    /// </summary>
    [TestCase(4, 4, 16)]         // IPv4: the most lengths probed longest first (no markers)
    [TestCase(4, 6, 1)]          // IPv4: crosses to the binary search
    [TestCase(4, 24, 2)]
    [TestCase(4, 33, 3)]         // every length
    [TestCase(5, 8, 4)]          // 40-bit data: one partial word
    [TestCase(19, 12, 5)]        // the dispatcher's 152-bit data: three words, the last partial
    [TestCase(19, 153, 6)]       // every length of it
    [TestCase(40, 10, 7)]        // five whole words
    [TestCase(1, 9, 8)]          // under one word,
    [TestCase(7, 57, 9)]         //   every length of a 7-byte key,
    [TestCase(8, 65, 10)]        //   one whole word,
    [TestCase(12, 20, 11)]       //   a word and a half,
    [TestCase(16, 129, 12)]      //   IPv6: two whole words, every length,
    [TestCase(17, 24, 13)]       //   just over two words,
    [TestCase(24, 193, 14)]      //   three whole words, every length;
    [TestCase(25, 16, 15)]       //   and just over three
    public void AgreesWithTheModelAndTheWalk(int dataSize, int lengthSet, int seed)
    {
        var rng = new Random(seed);
        int maxPrefix = dataSize * 8;
        var lengths = new List<int> { 0, maxPrefix };
        while (lengths.Count < Math.Min(lengthSet, maxPrefix + 1))
        {
            int l = rng.Next(1, maxPrefix);
            if (!lengths.Contains(l)) lengths.Add(l);
        }
        const int maxEntries = 300;
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 4 + dataSize, 4, maxEntries, MapFlags.NoPrealloc, "idx");
        var model = new Dictionary<string, uint>();
        // Data drawn near a few bases, so prefixes nest and share words.
        var bases = Enumerable.Range(0, 4).Select(_ => { var b = new byte[dataSize]; rng.NextBytes(b); return b; }).ToArray();
        byte[] RandomData()
        {
            var d = (byte[])bases[rng.Next(bases.Length)].Clone();
            int from = rng.Next(0, maxPrefix + 1);
            for (int bit = from; bit < maxPrefix; bit++)
                if (rng.Next(2) == 0) d[bit >> 3] ^= (byte)(0x80 >> (bit & 7));
            return d;
        }
        bool sawScan = false, sawSearch = false;
        var value = new byte[4];
        byte* keyBuffer = stackalloc byte[4 + dataSize];
        for (int step = 0; step < 5000; step++)
        {
            int length = lengths[rng.Next(lengths.Count)];
            var data = RandomData();
            string mk = ModelKey(length, data);
            bool present = model.ContainsKey(mk);
            int op = rng.Next(10);
            if (op < 3)
            {
                Assert.That(map.Delete(Key(length, data)), Is.EqualTo(present ? 0 : -Errno.ENOENT), $"delete {mk} at step {step}");
                model.Remove(mk);
            }
            else
            {
                ulong flags = (ulong)rng.Next(3);
                int expected = flags == UpdateFlags.NoExist && present ? -Errno.EEXIST
                    : flags == UpdateFlags.Exist && !present ? -Errno.ENOENT
                    : !present && model.Count >= maxEntries ? -Errno.ENOSPC
                    : 0;
                uint v = (uint)step;
                Assert.That(map.Update(Key(length, data), U32(v), flags), Is.EqualTo(expected), $"update {mk} flags {flags} at step {step}");
                if (expected == 0) model[mk] = v;
            }
            Assert.That(map.Count, Is.EqualTo(model.Count));
            Assert.That(map.DistinctPrefixLengths, Is.EqualTo(model.Keys.Select(k => k.Split('/')[0]).Distinct().Count()));
            // Above the limit the lengths are searched in binary, over markers; a length emptied while searching stays
            // listed until the next rebuild, so the search (and its markers) can outlast the lengths.
            if (map.DistinctPrefixLengths > LpmTrieMap.LinearSearchMaxLengths) Assert.That(map.IndexMarkers, Is.GreaterThan(0), "searched in binary: markers");
            if (map.IndexMarkers > 0) sawSearch = true; else sawScan = true;

            // A lookup: mostly the full length, sometimes shorter, sometimes above the maximum.
            int r = rng.Next(10);
            int keyPrefix = r < 6 ? maxPrefix : r < 9 ? rng.Next(0, maxPrefix + 1) : maxPrefix + 1 + rng.Next(3);
            var probe = RandomData();
            uint? best = null;
            for (int l = Math.Min(keyPrefix, maxPrefix); l >= 0 && keyPrefix <= maxPrefix; l--)
                if (model.TryGetValue(ModelKey(l, probe), out uint found)) { best = found; break; }
            var key = Key(keyPrefix, probe);
            key.CopyTo(new Span<byte>(keyBuffer, key.Length));
            string what = $"lookup {keyPrefix}/{Convert.ToHexString(probe)} at step {step} ({map.DistinctPrefixLengths} lengths)";
            int u = map.Lookup(key, value);
            Assert.That(u == 0 ? BitConverter.ToUInt32(value) : (uint?)null, Is.EqualTo(best), $"userspace {what}");
            Assert.That(u, Is.EqualTo(best == null ? -Errno.ENOENT : 0), what);
            MapEpoch.Enter();
            try
            {
                ulong viaHelper = KernelHelpers.MapLookupElem(map.Handle, (ulong)keyBuffer, 0, 0, 0);
                ulong viaWalk = map.LookupElemByWalk((ulong)keyBuffer);
                ulong viaIndex = map.LookupElemByIndex((ulong)keyBuffer);
                Assert.That(viaHelper == 0 ? null : (uint?)*(uint*)viaHelper, Is.EqualTo(best), $"helper {what}");
                Assert.That(viaWalk, Is.EqualTo(viaHelper), $"the walk returns the same value pointer, {what}");
                Assert.That(viaIndex, Is.EqualTo(viaHelper), $"the index returns the same value pointer, {what}");
            }
            finally
            {
                MapEpoch.Exit();
            }
        }
        if (lengths.Count <= LpmTrieMap.LinearSearchMaxLengths) Assert.That(sawSearch, Is.False, "few lengths: always probed longest first");
        else Assert.That(sawScan && sawSearch, Is.True, "many lengths: both searches taken");
        // Iteration is the trie's and visits every stored prefix once.
        var walked = map.Keys().Select(k => ModelKey(BitConverter.ToInt32(k), k.AsSpan(4))).ToList();
        Assert.That(walked, Is.EquivalentTo(model.Keys));
    }

    /// <summary>
    /// One past <see cref="LpmTrieMap.LinearSearchMaxLengths"/> lengths the index searches them in binary over
    /// markers (the table is rebuilt for the new shape); a length whose prefixes all go stays in the search
    /// until a new length rebuilds the table for the lengths stored, which goes back to probing longest first,
    /// without markers, when they are few; answers stay the longest match throughout.
    /// </summary>
    [Test]
    public void SwitchesToTheBinarySearchAboveTheScanLimitAndBack()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 100, MapFlags.NoPrealloc, "idx");
        byte[] K(int len) => Key(len, [10, 1, 2, 3]);
        var v = new byte[4];
        uint Found(byte[] key)
        {
            Assert.That(map.Lookup(key, v), Is.EqualTo(0));
            return BitConverter.ToUInt32(v);
        }
        int limit = LpmTrieMap.LinearSearchMaxLengths;
        for (int len = 0; len < limit; len++) Assert.That(map.Update(K(len), U32((uint)len)), Is.EqualTo(0));
        Assert.That((map.DistinctPrefixLengths, map.IndexMarkers), Is.EqualTo((limit, 0)));
        Assert.That(Found(K(32)), Is.EqualTo((uint)limit - 1));
        Assert.That(map.Update(K(32), U32(32)), Is.EqualTo(0));
        Assert.That(map.DistinctPrefixLengths, Is.EqualTo(limit + 1));
        Assert.That(map.IndexMarkers, Is.GreaterThan(0), "searched in binary: the /32 has markers on its path");
        Assert.That(Found(K(32)), Is.EqualTo(32u));
        Assert.That(Found(K(31)), Is.EqualTo((uint)limit - 1));
        Assert.That(Found(Key(32, [10, 1, 2, 4])), Is.EqualTo((uint)limit - 1), "a marker hit whose longer side misses: its best prefix");
        Assert.That(map.Update(Key(32, [10, 1, 2, 4]), U32(99)), Is.EqualTo(0), "a second /32: no new length");
        Assert.That(map.DistinctPrefixLengths, Is.EqualTo(limit + 1));
        Assert.That(Found(Key(32, [10, 1, 2, 4])), Is.EqualTo(99u));
        Assert.That(map.Delete(K(32)), Is.EqualTo(0));
        Assert.That(map.IndexMarkers, Is.GreaterThan(0), "the other /32 keeps the length");
        Assert.That(Found(K(32)), Is.EqualTo((uint)limit - 1));
        Assert.That(map.Delete(Key(32, [10, 1, 2, 4])), Is.EqualTo(0));
        Assert.That(map.DistinctPrefixLengths, Is.EqualTo(limit));
        Assert.That(map.IndexMarkers, Is.GreaterThan(0), "/32 stays in the search: no rebuild for a length that goes");
        Assert.That(Found(K(32)), Is.EqualTo((uint)limit - 1));
        Assert.That(map.Update(K(32), U32(32)), Is.EqualTo(0), "back again: still in the list");
        Assert.That(Found(K(32)), Is.EqualTo(32u));
        Assert.That(map.Delete(K(32)), Is.EqualTo(0));
        Assert.That(map.Delete(K(limit - 1)), Is.EqualTo(0));
        Assert.That(map.Update(K(20), U32(20)), Is.EqualTo(0), "a new length: rebuilt for the lengths stored");
        Assert.That((map.DistinctPrefixLengths, map.IndexMarkers), Is.EqualTo((limit, 0)), "few lengths again: probed longest first");
        Assert.That(Found(K(32)), Is.EqualTo(20u));
        Assert.That(Found(K(19)), Is.EqualTo((uint)limit - 2));
    }

    /// <summary>
    /// Markers' best prefixes follow inserts, value replaces and deletes of a prefix above them (no change of
    /// the length list, so no rebuild): eight lengths, a /32 whose path has markers at shorter lengths, then a
    /// /16 and a /20 over it, replaced and deleted, checked against keys that end on those markers.
    /// </summary>
    [Test]
    public void MarkerBestPrefixesFollowUpdatesAbove()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 100, MapFlags.NoPrealloc, "idx");
        var v = new byte[4];
        uint? Found(byte[] key) => map.Lookup(key, v) == 0 ? BitConverter.ToUInt32(v) : null;
        // Every length of the search present elsewhere (172.16/12 ...), 10.1.2.77/32 and 10/8 under the key.
        foreach (int len in new[] { 4, 12, 16, 20, 24, 28 }) Assert.That(map.Update(Key(len, [172, 16, 0, 0]), U32(1000)), Is.EqualTo(0));
        Assert.That(map.Update(Key(8, [10, 0, 0, 0]), U32(8)), Is.EqualTo(0));
        Assert.That(map.Update(Key(32, [10, 1, 2, 77]), U32(32)), Is.EqualTo(0));
        Assert.That(map.IndexMarkers, Is.GreaterThan(0));
        byte[] near = Key(32, [10, 1, 2, 3]);   // shares the /32's markers, not the /32
        Assert.That(Found(near), Is.EqualTo(8u));
        Assert.That(map.Update(Key(16, [10, 1, 0, 0]), U32(16)), Is.EqualTo(0));
        Assert.That(Found(near), Is.EqualTo(16u), "insert above the markers");
        Assert.That(map.Update(Key(20, [10, 1, 0, 0]), U32(20)), Is.EqualTo(0));
        Assert.That(Found(near), Is.EqualTo(20u));
        Assert.That(map.Update(Key(16, [10, 1, 0, 0]), U32(160)), Is.EqualTo(0));
        Assert.That(map.Update(Key(20, [10, 1, 0, 0]), U32(200)), Is.EqualTo(0));
        Assert.That(Found(near), Is.EqualTo(200u), "replace: the markers point at the new node");
        Assert.That(map.Delete(Key(20, [10, 1, 0, 0])), Is.EqualTo(0));
        Assert.That(Found(near), Is.EqualTo(160u), "delete: the next shorter prefix");
        Assert.That(map.Delete(Key(16, [10, 1, 0, 0])), Is.EqualTo(0));
        Assert.That(Found(near), Is.EqualTo(8u));
        Assert.That(map.Delete(Key(8, [10, 0, 0, 0])), Is.EqualTo(0));
        Assert.That(Found(near), Is.Null);
        Assert.That(Found(Key(32, [10, 1, 2, 77])), Is.EqualTo(32u));
    }

    [Test]
    public void TheTableGrowsAndCompacts()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 100_000, MapFlags.NoPrealloc, "idx");
        int initial = map.IndexCapacity;
        byte[] K(int i) => Key(32, BitConverter.GetBytes(unchecked((uint)i * 2654435761u)));
        for (int i = 0; i < 5000; i++) Assert.That(map.Update(K(i), U32((uint)i)), Is.EqualTo(0));
        int grown = map.IndexCapacity;
        Assert.That(grown, Is.GreaterThanOrEqualTo(2 * 5000), "at most half full");
        for (int i = 0; i < 4990; i++) Assert.That(map.Delete(K(i)), Is.EqualTo(0));
        // Deleted slots are tombstones until inserts need room: then the table is rebuilt for the live entries.
        for (int i = 0; i < 30_000; i++)
        {
            Assert.That(map.Update(Key(24, BitConverter.GetBytes((uint)i * 40503u)), U32(1)), Is.EqualTo(0));
            Assert.That(map.Delete(Key(24, BitConverter.GetBytes((uint)i * 40503u))), Is.EqualTo(0));
        }
        Assert.That(map.IndexCapacity, Is.LessThan(grown), "rebuilt smaller");
        Assert.That(initial, Is.LessThan(grown));
        var v = new byte[4];
        for (int i = 4990; i < 5000; i++)
        {
            Assert.That(map.Lookup(K(i), v), Is.EqualTo(0));
            Assert.That(BitConverter.ToUInt32(v), Is.EqualTo((uint)i));
        }
        Assert.That(map.Lookup(K(5), v), Is.EqualTo(-Errno.ENOENT));
    }

    [Test]
    public void ChurnAndDisposeFreeEveryNativeBlock()
    {
        MapEpoch.Collect();
        long before = NativeAllocations.LiveBlocks;
        using (var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 100_000, MapFlags.NoPrealloc, "idx"))
        {
            var rng = new Random(3);
            for (int i = 0; i < 20_000; i++)
            {
                var key = Key(rng.Next(0, 33), BitConverter.GetBytes(rng.Next(0, 4096)));
                if (rng.Next(3) == 0) map.Delete(key);
                else map.Update(key, U32((uint)i));
            }
        }
        MapEpoch.Collect();
        Assert.That(NativeAllocations.LiveBlocks, Is.EqualTo(before));
    }

    // Looks up the address in r1 as a /32 and checks the value: 0 absent, 1 + its prefix length when consistent, 100 torn.
    // Value: u32 prefix length, u32 its complement, u64 sequence, u64 sequence's complement.
    const string CheckValue = """
        stw [%r10-8], 32
        stxw [%r10-4], %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -8
        call 1
        jeq %r0, 0, absent
        ldxw %r1, [%r0]
        ldxw %r2, [%r0+4]
        xor %r2, %r1
        add %r2, 1
        rsh %r2, 32
        jne %r2, 1, torn
        ldxdw %r3, [%r0+8]
        ldxdw %r4, [%r0+16]
        xor %r4, -1
        jne %r3, %r4, torn
        mov %r0, %r1
        add %r0, 1
        exit
        torn:
        mov %r0, 100
        exit
        absent:
        mov %r0, 0
        exit
        """;

    static byte[] LengthValue(int length, ulong seq) =>
        [.. BitConverter.GetBytes((uint)length), .. BitConverter.GetBytes(~(uint)length), .. BitConverter.GetBytes(seq), .. BitConverter.GetBytes(~seq)];

    /// <summary>
    /// Readers (programs on every engine, direct helper calls holding the value pointer across a pause,
    /// userspace lookups) look up 10.1.2.3 while a writer inserts, replaces and deletes 10.1.0.0/16, 10.1.2.0/24
    /// and 10.1.2.3/32 over a permanent 10.0.0.0/8, toggles a 12.0.0.0/20 (a length that comes and goes: the
    /// length list is republished) and churns /32s under 11/8 (the table grows and compacts). Every lookup must
    /// find a value, untorn, whose prefix length is one of the four that can match, and a value pointer held
    /// inside the read section must keep its contents (no reuse while held).
    /// </summary>
    [Test]
    public void ReadersRacingLengthChangesSeeOnlyMatchingUntornValues([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 24, 100_000, MapFlags.NoPrealloc, "race");
        static byte[] K(int length, byte a, byte b, byte c, byte d) => Key(length, [a, b, c, d]);
        ulong seq = 0;
        Assert.That(map.Update(K(8, 10, 0, 0, 0), LengthValue(8, ++seq)), Is.EqualTo(0));
        var check = Prepare(engine, CheckValue, map);
        uint address = BitConverter.ToUInt32([10, 1, 2, 3]);
        const int lookupsPerReader = 30_000;
        int readersLeft = 3, bad = 0, badHeld = 0;
        var seen = new int[4];
        long reclaimedBefore = MapEpoch.Reclaimed;
        var readers = Enumerable.Range(0, 3).Select(r => new Thread(() =>
        {
            var buffer = new byte[24];
            byte* key = stackalloc byte[8];
            *(uint*)key = 32;
            *(uint*)(key + 4) = address;
            for (int i = 0; i < lookupsPerReader; i++)
            {
                switch ((i + r) % 3)
                {
                    case 0:
                        ulong result = Run(check, address);
                        if (result is not (9 or 17 or 25 or 33)) Interlocked.Increment(ref bad);
                        else Interlocked.Increment(ref seen[(int)(result - 1) / 8 - 1]);
                        break;
                    case 1:
                        MapEpoch.Enter();
                        ulong p = KernelHelpers.MapLookupElem(map.Handle, (ulong)key, 0, 0, 0);
                        if (p == 0) Interlocked.Increment(ref bad);
                        else
                        {
                            ulong a = *(ulong*)p, b = *(ulong*)(p + 8), c = *(ulong*)(p + 16);
                            Thread.SpinWait(50);
                            if (*(ulong*)p != a || *(ulong*)(p + 8) != b || *(ulong*)(p + 16) != c) Interlocked.Increment(ref badHeld);
                            uint len = (uint)a;
                            if ((uint)(a >> 32) != ~len || c != ~b || len is not (8 or 16 or 24 or 32)) Interlocked.Increment(ref bad);
                        }
                        MapEpoch.Exit();
                        break;
                    default:
                        if (map.Lookup(K(32, 10, 1, 2, 3), buffer) != 0) Interlocked.Increment(ref bad);
                        else
                        {
                            uint len = BitConverter.ToUInt32(buffer);
                            if (BitConverter.ToUInt32(buffer, 4) != ~len || BitConverter.ToUInt64(buffer, 16) != ~BitConverter.ToUInt64(buffer, 8)
                                || len is not (8 or 16 or 24 or 32))
                                Interlocked.Increment(ref bad);
                        }
                        break;
                }
            }
            Interlocked.Decrement(ref readersLeft);
        })).ToList();
        readers.ForEach(t => t.Start());
        var rng = new Random(11);
        var churned = new List<byte[]>();
        bool sawSearch = false;
        (int Length, byte[] Key)[] toggled = [(16, K(16, 10, 1, 0, 0)), (24, K(24, 10, 1, 2, 0)), (32, K(32, 10, 1, 2, 3)), (20, K(20, 12, 0, 0, 0))];
        while (Volatile.Read(ref readersLeft) > 0)
        {
            var (length, key) = toggled[rng.Next(toggled.Length)];
            if (rng.Next(3) == 0) map.Delete(key);
            else Assert.That(map.Update(key, LengthValue(length, ++seq)), Is.EqualTo(0));
            var c = K(32, 11, (byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256));
            if (map.Update(c, LengthValue(32, ++seq)) == 0) churned.Add(c);
            if (churned.Count > 3000)
            {
                foreach (var old in churned) map.Delete(old);
                churned.Clear();
            }
            sawSearch |= map.IndexMarkers > 0;
        }
        readers.ForEach(t => t.Join());
        MapEpoch.Collect();
        Assert.Multiple(() =>
        {
            Assert.That(bad, Is.EqualTo(0), $"{engine}: a lookup missed, was torn, or matched an impossible prefix");
            Assert.That(badHeld, Is.EqualTo(0), $"{engine}: a held value changed inside the read section");
            Assert.That(sawSearch, Is.True, "five lengths: binary search over markers");
            Assert.That(seen.Count(n => n > 0), Is.GreaterThanOrEqualTo(2), $"{engine}: programs saw several matching lengths: {string.Join(", ", seen)}");
            Assert.That(MapEpoch.Reclaimed - reclaimedBefore, Is.GreaterThan(0), "replaced nodes and tables were freed");
            Assert.That(MapEpoch.Pending, Is.EqualTo(0));
        });
    }
}
