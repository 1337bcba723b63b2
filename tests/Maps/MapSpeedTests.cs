using System.Diagnostics;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Rough per-lookup costs of the program-side paths (run explicitly: <c>--filter Category=Speed</c>). The bounds are
/// loose, two orders of magnitude above the expected cost, so they catch a linear scan or a lock, not noise.
/// </summary>
[TestFixture, Explicit("timing"), Category("Speed"), NonParallelizable]
public class MapSpeedTests
{
    static unsafe double NsPerLookup(BpfMap map, byte[][] keys, int rounds)
    {
        var pinned = keys.Select(k => System.Runtime.InteropServices.GCHandle.Alloc(k, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
        try
        {
            var addresses = pinned.Select(h => (ulong)h.AddrOfPinnedObject()).ToArray();
            ulong hits = 0;
            ulong handle = map.Handle;
            // The best of five passes: the first ones run before tiered compilation has optimised the path.
            double best = double.MaxValue;
            for (int pass = 0; pass < 5; pass++)
            {
                MapEpoch.Enter();
                double start = ThreadCpuNs();
                hits = Lookups(handle, addresses, rounds);
                double elapsed = ThreadCpuNs() - start;
                MapEpoch.Exit();
                Assert.That(hits, Is.EqualTo((ulong)(rounds * keys.Length)), "every key found");
                best = Math.Min(best, elapsed / (rounds * keys.Length));
                Thread.Sleep(150);   // lets the tiering background compile finish
            }
            return best;
        }
        finally
        {
            foreach (var h in pinned) h.Free();
        }
    }

    static ulong Lookups(ulong handle, ulong[] addresses, int rounds)
    {
        ulong hits = 0;
        for (int r = 0; r < rounds; r++)
            foreach (var a in addresses)
                if (KernelHelpers.MapLookupElem(handle, a, 0, 0, 0) != 0) hits++;
        return hits;
    }

    /// <summary>CPU time of this thread (Linux schedstat), so that other processes on a shared machine do not count.</summary>
    static double ThreadCpuNs()
    {
        const string path = "/proc/thread-self/schedstat";
        if (File.Exists(path)) return double.Parse(File.ReadAllText(path).Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency);
    }

    [Test]
    public void TubularBindingsLpmTrie100k()
    {
        using var map = MapFactory.Create(MapType.LpmTrie, 23, 8, 1_000_000, MapFlags.NoPrealloc, "bindings");
        var rng = new Random(1);
        var lookups = new List<byte[]>();
        for (int i = 0; i < 100_000; i++)
        {
            var key = new byte[23];
            int prefix = 24 + 96 + rng.Next(16, 33);
            BitConverter.GetBytes(prefix).CopyTo(key, 0);
            key[4] = 6;
            BitConverter.GetBytes((ushort)rng.Next(1, 65536)).CopyTo(key, 5);
            key[17] = 0xff; key[18] = 0xff;                      // ::ffff:a.b.c.d
            rng.NextBytes(key.AsSpan(19, 4));
            Assert.That(map.Update(key, BitConverter.GetBytes((ulong)i)), Is.EqualTo(0));
            if (i % 100 == 0)
            {
                var probe = (byte[])key.Clone();
                BitConverter.GetBytes(152).CopyTo(probe, 0);
                lookups.Add(probe);
            }
        }
        double ns = NsPerLookup(map, [.. lookups], 200);
        TestContext.Out.WriteLine($"LPM_TRIE, 100,000 tubular bindings (23-byte keys): {ns:F0} ns per lookup");
        Assert.That(ns, Is.LessThan(20_000));
    }

    [Test]
    public void SmallLpmTrie()
    {
        using var map = MapFactory.Create(MapType.LpmTrie, 8, 8, 1024, MapFlags.NoPrealloc, "small");
        var rng = new Random(2);
        var probes = new List<byte[]>();
        for (int i = 0; i < 200; i++)
        {
            var key = new byte[8];
            BitConverter.GetBytes(rng.Next(8, 33)).CopyTo(key, 0);
            rng.NextBytes(key.AsSpan(4, 4));
            map.Update(key, BitConverter.GetBytes((ulong)i));
            var probe = (byte[])key.Clone();
            BitConverter.GetBytes(32).CopyTo(probe, 0);
            probes.Add(probe);
        }
        double ns = NsPerLookup(map, [.. probes], 5000);
        TestContext.Out.WriteLine($"LPM_TRIE, 200 IPv4 prefixes: {ns:F0} ns per lookup");
        Assert.That(ns, Is.LessThan(5_000));
    }

    [Test]
    public void Hash10k()
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 10_000, 0, "h");
        for (uint k = 0; k < 10_000; k++) map.Update(k * 2654435761u, (ulong)k);
        var keys = Enumerable.Range(0, 1000).Select(i => BitConverter.GetBytes((uint)i * 2654435761u)).ToArray();
        double ns = NsPerLookup(map, keys, 1000);
        TestContext.Out.WriteLine($"HASH, 10,000 u32 keys: {ns:F0} ns per lookup");
        Assert.That(ns, Is.LessThan(5_000));
    }

    [Test]
    public void Array()
    {
        using var map = MapFactory.Create(MapType.Array, 4, 8, 1024, 0, "a");
        var keys = Enumerable.Range(0, 1024).Select(i => BitConverter.GetBytes((uint)i)).ToArray();
        double ns = NsPerLookup(map, keys, 1000);
        TestContext.Out.WriteLine($"ARRAY, 1024 entries: {ns:F1} ns per lookup");
        Assert.That(ns, Is.LessThan(2_000));
    }

    [Test]
    public void EpochEnterExit()
    {
        const int n = 5_000_000;
        double ns = double.MaxValue;
        for (int pass = 0; pass < 3; pass++)
        {
            double start = ThreadCpuNs();
            for (int i = 0; i < n; i++)
            {
                MapEpoch.Enter();
                MapEpoch.Exit();
            }
            ns = Math.Min(ns, (ThreadCpuNs() - start) / n);
            Thread.Sleep(150);
        }
        TestContext.Out.WriteLine($"MapEpoch.Enter + Exit: {ns:F1} ns");
        Assert.That(ns, Is.LessThan(1_000));
    }
}
