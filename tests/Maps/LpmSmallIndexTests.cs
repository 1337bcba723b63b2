using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>
/// The LPM_TRIE small-map scan (<see cref="LpmSmallIndex"/>: full-length lookups of a map with at most
/// <see cref="LpmTrieMap.SmallPrefixes"/> prefixes) against the trie walk, across the switch to the stride index as
/// the map grows and back as it shrinks, with value replacements (which replace the trie's node) and keys of a
/// shorter prefix length (which the prefix index answers) among them.
/// </summary>
[TestFixture]
public unsafe class LpmSmallIndexTests
{
    static byte[] Key(int length, byte[] data) => [.. BitConverter.GetBytes(length), .. data];

    [TestCase(4, 1)]      // IPv4
    [TestCase(16, 2)]     // IPv6
    [TestCase(19, 3)]     // the dispatcher's key: protocol, port, address
    [TestCase(32, 4)]     // the longest data the scan takes
    [TestCase(1, 5)]
    public void AgreesWithTheWalkAcrossTheSwitch(int dataSize, int seed)
    {
        var rng = new Random(seed);
        int maxPrefix = dataSize * 8;
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 4 + dataSize, 4, 100, MapFlags.NoPrealloc, "small");
        var bases = Enumerable.Range(0, 2).Select(_ => { var b = new byte[dataSize]; rng.NextBytes(b); return b; }).ToArray();
        byte[] Near()
        {
            var d = (byte[])bases[rng.Next(bases.Length)].Clone();
            for (int bit = rng.Next(0, maxPrefix + 1); bit < maxPrefix; bit++)
                if (rng.Next(3) == 0) d[bit >> 3] ^= (byte)(0x80 >> (bit & 7));
            return d;
        }
        var stored = new List<byte[]>();
        byte* key = stackalloc byte[4 + dataSize];
        int switches = 0;
        bool wasSmall = false;
        for (int step = 0; step < 1200; step++)
        {
            // Up past the limit and back under it, three times; now and then a stored prefix gets a new value.
            bool grow = (step / 100) % 2 == 0;
            if (rng.Next(8) == 0 && stored.Count > 0)
                Assert.That(map.Update(stored[rng.Next(stored.Count)], U32((uint)step)), Is.EqualTo(0));
            else if (grow || stored.Count == 0)
            {
                var k = Key(rng.Next(4) == 0 ? maxPrefix : rng.Next(0, maxPrefix + 1), Near());
                if (map.Update(k, U32((uint)step), UpdateFlags.NoExist) == 0) stored.Add(k);
            }
            else
            {
                int i = rng.Next(stored.Count);
                Assert.That(map.Delete(stored[i]), Is.EqualTo(0));
                stored.RemoveAt(i);
            }
            bool small = stored.Count > 0 && stored.Count <= LpmTrieMap.SmallPrefixes;
            Assert.That(map.LookupsScanSmall, Is.EqualTo(small), $"{stored.Count} prefixes");
            if (small != wasSmall) switches++;
            wasSmall = small;
            for (int probe = 0; probe < 6; probe++)
            {
                var k = Key(probe == 5 ? rng.Next(0, maxPrefix + 1) : maxPrefix, Near());
                k.CopyTo(new Span<byte>(key, k.Length));
                MapEpoch.Enter();
                try
                {
                    Assert.That(map.LookupElem((ulong)key), Is.EqualTo(map.LookupElemByWalk((ulong)key)),
                        $"/{*(uint*)key} {Convert.ToHexString(k, 4, dataSize)} at step {step} ({stored.Count} prefixes)");
                }
                finally
                {
                    MapEpoch.Exit();
                }
            }
        }
        Assert.That(switches, Is.GreaterThanOrEqualTo(5), "the map crossed the limit both ways, more than once");
    }

    /// <summary>Data longer than one vector is never scanned; the stride index answers.</summary>
    [Test]
    public void DataLongerThanAVectorIsNotScanned()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 4 + LpmSmallIndex.MaxDataBytes + 1, 4, 10, MapFlags.NoPrealloc, "long");
        Assert.That(map.Update(Key(8, new byte[LpmSmallIndex.MaxDataBytes + 1]), U32(1)), Is.EqualTo(0));
        Assert.That(map.LookupsScanSmall, Is.False);
    }

    /// <summary>The scan's block counts in the map's memory while it exists.</summary>
    [Test]
    public void TheBlockCountsInTheMemory()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 4, 10, MapFlags.NoPrealloc, "memory");
        Assert.That(map.Update(Key(24, [10, 1, 2, 0]), U32(1)), Is.EqualTo(0));
        long scanned = map.MemoryBytes;
        map.SmallLimit = 0;
        Assert.That(map.LookupsScanSmall, Is.False);
        Assert.That(map.MemoryBytes, Is.LessThan(scanned));
    }
}
