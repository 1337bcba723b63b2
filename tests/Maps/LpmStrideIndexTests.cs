using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>
/// The LPM_TRIE stride index (the multibit trie that answers full-length lookups, <see cref="LpmStrideIndex"/>)
/// against the trie walk over random operation sequences, its table splits and folds, its memory, and readers
/// racing writers that split and fold the tables above the reader's prefix.
/// </summary>
[TestFixture, NonParallelizable]
public unsafe class LpmStrideIndexTests
{
    static byte[] Key(int length, byte[] data) => [.. BitConverter.GetBytes(length), .. data];

    /// <summary>
    /// Random inserts, replaces and deletes (lengths anywhere in 0..max, always /0 and /max among them, data
    /// near a few bases so prefixes nest and share bytes, random bits past the prefix); after each step
    /// full-length lookups through the helper (the stride index) must return the walk's value pointer, and
    /// at the end deleting every prefix folds the structure back to the root table alone.
    /// </summary>
    [TestCase(4, 33, 1)]      // IPv4, every length
    [TestCase(4, 5, 2)]       // IPv4, few lengths
    [TestCase(16, 129, 3)]    // IPv6, every length
    [TestCase(16, 9, 4)]
    [TestCase(19, 40, 5)]     // the dispatcher's 152-bit data
    [TestCase(1, 9, 6)]       // one byte: the root alone
    [TestCase(3, 25, 7)]
    public void AgreesWithTheWalk(int dataSize, int lengthSet, int seed)
    {
        var rng = new Random(seed);
        int maxPrefix = dataSize * 8;
        var lengths = new List<int> { 0, maxPrefix };
        while (lengths.Count < Math.Min(lengthSet, maxPrefix + 1))
        {
            int l = rng.Next(1, maxPrefix);
            if (!lengths.Contains(l)) lengths.Add(l);
        }
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 4 + dataSize, 4, 2000, MapFlags.NoPrealloc, "stride");
        var bases = Enumerable.Range(0, 3).Select(_ => { var b = new byte[dataSize]; rng.NextBytes(b); return b; }).ToArray();
        byte[] RandomData()
        {
            var d = (byte[])bases[rng.Next(bases.Length)].Clone();
            int from = rng.Next(0, maxPrefix + 1);
            for (int bit = from; bit < maxPrefix; bit++)
                if (rng.Next(2) == 0) d[bit >> 3] ^= (byte)(0x80 >> (bit & 7));
            return d;
        }
        var stored = new List<byte[]>();
        byte* key = stackalloc byte[4 + dataSize];
        for (int step = 0; step < 6000; step++)
        {
            // Grow for the first half, then shrink: splits, forks and folds all happen.
            bool grow = step < 3000 ? rng.Next(4) != 0 : rng.Next(4) == 0;
            if (grow || stored.Count == 0)
            {
                var k = Key(lengths[rng.Next(lengths.Count)], RandomData());
                if (map.Update(k, U32((uint)step)) == 0) stored.Add(k);
            }
            else
            {
                int i = rng.Next(stored.Count);
                map.Delete(stored[i]);   // -ENOENT when a later update of the same prefix was stored twice in the list
                stored.RemoveAt(i);
            }
            for (int probe = 0; probe < 4; probe++)
            {
                var k = Key(maxPrefix, RandomData());
                k.CopyTo(new Span<byte>(key, k.Length));
                MapEpoch.Enter();
                try
                {
                    ulong viaStride = KernelHelpers.MapLookupElem(map.Handle, (ulong)key, 0, 0, 0);
                    Assert.That(viaStride, Is.EqualTo(map.LookupElemByWalk((ulong)key)), $"lookup {Convert.ToHexString(k)} at step {step} ({map.Count} prefixes, {map.StrideTables} tables)");
                }
                finally
                {
                    MapEpoch.Exit();
                }
            }
        }
        foreach (var k in map.Keys().ToList()) Assert.That(map.Delete(k), Is.EqualTo(0));
        Assert.That(map.StrideTables, Is.EqualTo(1), "every table folded away: the root alone");
    }

    /// <summary>
    /// Path compression: a table only where two stored prefixes part, so random /32s and /128s take fewer tables
    /// than prefixes, and prefixes that share their first 120 bits sit two tables deep (the root, then the table
    /// at bit 120), which the memory figure counts.
    /// </summary>
    [Test]
    public void TablesOnlyWherePrefixesPart()
    {
        var rng = new Random(9);
        using (var v6 = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 20, 4, 10_000, MapFlags.NoPrealloc, "v6"))
        {
            var data = new byte[16];
            for (int i = 0; i < 1000; i++)
            {
                rng.NextBytes(data);
                Assert.That(v6.Update(Key(128, data), U32((uint)i)), Is.EqualTo(0));
            }
            Assert.That(v6.StrideTables, Is.LessThan(1000));
        }
        using var shared = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 20, 4, 10_000, MapFlags.NoPrealloc, "v6");
        var prefix = new byte[16];
        rng.NextBytes(prefix);
        for (int i = 0; i < 200; i++)
        {
            prefix[15] = (byte)i;
            Assert.That(shared.Update(Key(128, prefix), U32((uint)i)), Is.EqualTo(0));
        }
        Assert.That(shared.StrideTables, Is.EqualTo(2), "the root and one table at bit 120");
        long before = shared.MemoryBytes;
        for (int i = 0; i < 200; i++)
        {
            prefix[15] = (byte)i;
            Assert.That(shared.Delete(Key(128, prefix)), Is.EqualTo(0));
        }
        Assert.That(shared.StrideTables, Is.EqualTo(1));
        Assert.That(shared.MemoryBytes, Is.LessThan(before));
    }

    /// <summary>
    /// A table left with one child and no best entry folds into its parent's entry: 10.1.2.3/32 and 10.1.9.0/24
    /// part after 20 bits (a table at bit 16 holding the /24 as a best entry and the /32 as a leaf); deleting the
    /// /24 leaves the /32 alone, which the root's entry then holds directly.
    /// </summary>
    [Test]
    public void ATableLeftWithOneChildFoldsIntoItsParent()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 100, MapFlags.NoPrealloc, "fold");
        Assert.That(map.Update(Key(32, [10, 1, 2, 3]), U32(32)), Is.EqualTo(0));
        Assert.That(map.StrideTables, Is.EqualTo(1), "one prefix under the root's entry: a leaf, no table");
        Assert.That(map.Update(Key(24, [10, 1, 9, 0]), U32(24)), Is.EqualTo(0));
        Assert.That(map.StrideTables, Is.EqualTo(2));
        Assert.That(map.Delete(Key(24, [10, 1, 9, 0])), Is.EqualTo(0));
        Assert.That(map.StrideTables, Is.EqualTo(1), "the table at bit 16 folded into the root's entry");
        Assert.That(map.Lookup(Key(32, [10, 1, 2, 3]), new byte[4]), Is.EqualTo(0));
        Assert.That(map.Lookup(Key(32, [10, 1, 9, 1]), new byte[4]), Is.EqualTo(-Errno.ENOENT));
    }

    /// <summary>
    /// The structure full-length lookups read: the stride index, except with at most
    /// <see cref="LpmTrieMap.LinearSearchMaxLengths"/> lengths over more than
    /// <see cref="LpmTrieMap.StrideTablesBeyondCache"/> tables, where the prefix index's few probes are cheaper;
    /// a fifth length goes back to the stride index. Lookups agree with the walk either way.
    /// </summary>
    [Test]
    public void FewLengthsOverManyTablesProbeTheLengths()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 100_000, MapFlags.NoPrealloc, "choice");
        var rng = new Random(2);
        var data = new byte[4];
        while (map.StrideTables <= LpmTrieMap.StrideTablesBeyondCache)
        {
            Assert.That(map.LookupsProbeLengths, Is.False);
            rng.NextBytes(data);
            map.Update(Key(32, data), U32(1));
        }
        Assert.That(map.LookupsProbeLengths, Is.True, $"one length over {map.StrideTables} tables");
        byte* key = stackalloc byte[8];
        void AgreeWithTheWalk()
        {
            for (int i = 0; i < 2000; i++)
            {
                *(uint*)key = 32;
                *(uint*)(key + 4) = (uint)rng.Next();
                MapEpoch.Enter();
                try
                {
                    Assert.That(map.LookupElem((ulong)key), Is.EqualTo(map.LookupElemByWalk((ulong)key)));
                }
                finally
                {
                    MapEpoch.Exit();
                }
            }
        }
        AgreeWithTheWalk();
        foreach (int length in new[] { 1, 9, 17, 25 }) Assert.That(map.Update(Key(length, [0x80, 0, 0, 0]), U32(2)), Is.EqualTo(0));
        Assert.That(map.LookupsProbeLengths, Is.False, "five lengths: the stride index");
        AgreeWithTheWalk();
    }

    /// <summary>Inserts and deletes that split, fork and fold tables leave no native block behind once the map is gone.</summary>
    [Test]
    public void ChurnAndDisposeFreeEveryTable()
    {
        MapEpoch.Collect();
        long before = NativeAllocations.LiveBlocks;
        using (var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 20, 4, 100_000, MapFlags.NoPrealloc, "stride"))
        {
            var rng = new Random(5);
            var data = new byte[16];
            for (int i = 0; i < 20_000; i++)
            {
                data[0] = 0x20;
                data[rng.Next(1, 16)] = (byte)rng.Next(4);
                var key = Key(rng.Next(0, 129), data);
                if (rng.Next(3) == 0) map.Delete(key);
                else map.Update(key, U32((uint)i));
            }
            Assert.That(map.StrideTables, Is.GreaterThan(1));
        }
        MapEpoch.Collect();
        Assert.That(NativeAllocations.LiveBlocks, Is.EqualTo(before));
    }

    /// <summary>
    /// Readers look up 10.1.2.3/32 (stored for good, and a permanent 10.0.0.0/8 under it) while a writer inserts
    /// and deletes prefixes that split the /32's leaf into a table (10.1.2.4/32), fork the path above it
    /// (10.200.0.0/16, 10.1.128.0/17, 10.1.2.128/25) and fold those tables away again: every lookup, through the
    /// helper, must return the /32's value, since the prefixes toggled never cover the key more closely.
    /// </summary>
    [Test]
    public void ReadersSeeTheirPrefixThroughSplitsAndFolds()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 1000, MapFlags.NoPrealloc, "stride");
        static byte[] K(int length, byte a, byte b, byte c, byte d) => Key(length, [a, b, c, d]);
        Assert.That(map.Update(K(8, 10, 0, 0, 0), U32(8)), Is.EqualTo(0));
        Assert.That(map.Update(K(32, 10, 1, 2, 3), U32(32)), Is.EqualTo(0));
        int writing = 1, bad = 0;
        long lookups = 0;
        // The readers run as long as the writer does (a fixed number of changes), however the threads are scheduled.
        var readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            byte* key = stackalloc byte[8];
            *(uint*)key = 32;
            key[4] = 10; key[5] = 1; key[6] = 2; key[7] = 3;
            while (Volatile.Read(ref writing) != 0)
            {
                MapEpoch.Enter();
                ulong p = KernelHelpers.MapLookupElem(map.Handle, (ulong)key, 0, 0, 0);
                if (p == 0 || *(uint*)p != 32) Interlocked.Increment(ref bad);
                MapEpoch.Exit();
                Interlocked.Increment(ref lookups);
            }
        })).ToList();
        readers.ForEach(t => t.Start());
        byte[][] toggled = [K(32, 10, 1, 2, 4), K(16, 10, 200, 0, 0), K(17, 10, 1, 128, 0), K(25, 10, 1, 2, 128), K(24, 10, 1, 3, 0)];
        var rng = new Random(4);
        int changes = 0;
        for (; changes < 200_000; changes++)
        {
            var k = toggled[rng.Next(toggled.Length)];
            if (rng.Next(2) == 0) map.Delete(k);
            else map.Update(k, U32(0));
        }
        Volatile.Write(ref writing, 0);
        readers.ForEach(t => t.Join());
        Assert.That(bad, Is.EqualTo(0), $"a lookup lost 10.1.2.3/32 during {changes} splits and folds ({lookups} lookups)");
    }
}
