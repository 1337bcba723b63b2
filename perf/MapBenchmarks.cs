using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Perf;

/// <summary>
/// Program-side map lookups through the helper both engines call (<c>bpf_map_lookup_elem</c>), per lookup:
/// ARRAY, HASH with 10,000 keys, LPM_TRIE with 200 IPv4 prefixes and with 100,000 tubular-style bindings,
/// and the reclamation read section every program run enters and leaves.
/// </summary>
public unsafe class MapBenchmarks
{
    /// <summary>The map under test.</summary>
    [Params("array", "hash10k", "lpm200", "lpm100k")]
    public string Map { get; set; } = "";

    BpfMap _map = null!;
    ulong[] _keys = [];
    byte* _keyMemory;

    /// <summary>Builds the map and the probe keys (in native memory, as a program's stack would hold them).</summary>
    [GlobalSetup]
    public void Setup()
    {
        (_map, _keys, nint memory) = Build(Map);
        _keyMemory = (byte*)memory;
    }

    /// <summary>
    /// Map <paramref name="name"/> filled, and its probe keys in native memory (every probe hits). Besides the
    /// <see cref="Map"/> values: <c>lpm16len</c>, 100,000 random IPv4 prefixes of 16 distinct lengths (/17../32,
    /// the most the LPM index probes); <c>lpm25len</c>, of 25 (/8../32: lookups walk the trie).
    /// </summary>
    internal static (BpfMap Map, ulong[] Keys, nint KeyMemory) Build(string name)
    {
        var rng = new Random(1);
        var probes = new List<byte[]>();
        BpfMap map;
        switch (name)
        {
            case "array":
                map = MapFactory.Create(MapType.Array, 4, 8, 1024, 0, "a");
                probes.AddRange(Enumerable.Range(0, 1024).Select(i => BitConverter.GetBytes((uint)i)));
                break;
            case "hash10k":
                map = MapFactory.Create(MapType.Hash, 4, 8, 10_000, 0, "h");
                for (uint k = 0; k < 10_000; k++) Check(map.Update(BitConverter.GetBytes(k * 2654435761u), BitConverter.GetBytes((ulong)k)));
                probes.AddRange(Enumerable.Range(0, 1000).Select(i => BitConverter.GetBytes((uint)i * 2654435761u)));
                break;
            case "lpm200":
                map = MapFactory.Create(MapType.LpmTrie, 8, 8, 1024, MapFlags.NoPrealloc, "small");
                for (int i = 0; i < 200; i++)
                {
                    var key = new byte[8];
                    BitConverter.GetBytes(rng.Next(8, 33)).CopyTo(key, 0);
                    rng.NextBytes(key.AsSpan(4, 4));
                    Check(map.Update(key, BitConverter.GetBytes((ulong)i)));
                    var probe = (byte[])key.Clone();
                    BitConverter.GetBytes(32).CopyTo(probe, 0);
                    probes.Add(probe);
                }
                break;
            case "lpm16len" or "lpm25len":
                map = MapFactory.Create(MapType.LpmTrie, 8, 8, 1_000_000, MapFlags.NoPrealloc, "routes");
                int shortest = name == "lpm16len" ? 17 : 8;
                for (int i = 0; i < 100_000; i++)
                {
                    var key = new byte[8];
                    BitConverter.GetBytes(rng.Next(shortest, 33)).CopyTo(key, 0);
                    rng.NextBytes(key.AsSpan(4, 4));
                    Check(map.Update(key, BitConverter.GetBytes((ulong)i)));
                    if (i % 100 == 0)
                    {
                        var probe = (byte[])key.Clone();
                        BitConverter.GetBytes(32).CopyTo(probe, 0);
                        probes.Add(probe);
                    }
                }
                break;
            default:
                // tubular's bindings: prefixlen, protocol, port, IPv4-mapped IPv6 address (23-byte keys)
                map = MapFactory.Create(MapType.LpmTrie, 23, 8, 1_000_000, MapFlags.NoPrealloc, "bindings");
                for (int i = 0; i < 100_000; i++)
                {
                    var key = new byte[23];
                    BitConverter.GetBytes(24 + 96 + rng.Next(16, 33)).CopyTo(key, 0);
                    key[4] = 6;
                    BitConverter.GetBytes((ushort)rng.Next(1, 65536)).CopyTo(key, 5);
                    key[17] = 0xff; key[18] = 0xff;
                    rng.NextBytes(key.AsSpan(19, 4));
                    Check(map.Update(key, BitConverter.GetBytes((ulong)i)));
                    if (i % 100 == 0)
                    {
                        var probe = (byte[])key.Clone();
                        BitConverter.GetBytes(152).CopyTo(probe, 0);
                        probes.Add(probe);
                    }
                }
                break;
        }
        int size = probes[0].Length;
        byte* keyMemory = (byte*)NativeMemory.Alloc((nuint)(size * probes.Count));
        var keys = new ulong[probes.Count];
        for (int i = 0; i < probes.Count; i++)
        {
            probes[i].CopyTo(new Span<byte>(keyMemory + i * size, size));
            keys[i] = (ulong)(keyMemory + i * size);
        }
        // Every probe must hit, or the benchmark would time the miss path.
        MapEpoch.Enter();
        try
        {
            foreach (var k in keys)
                if (KernelHelpers.MapLookupElem(map.Handle, k, 0, 0, 0) == 0) throw new InvalidOperationException($"{name}: a probe missed");
        }
        finally
        {
            MapEpoch.Exit();
        }
        return (map, keys, (nint)keyMemory);
    }

    static void Check(int err)
    {
        if (err != 0) throw new InvalidOperationException($"map update failed: {err}");
    }

    /// <summary>Frees the map and the keys.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _map.Dispose();
        NativeMemory.Free(_keyMemory);
    }

    /// <summary>One lookup of every probe key (1024 for array, 1000 for hash10k and lpm100k, 200 for lpm200): divide by that number.</summary>
    [Benchmark]
    public ulong Lookup()
    {
        ulong handle = _map.Handle, hits = 0;
        var keys = _keys;
        MapEpoch.Enter();
        for (int i = 0; i < keys.Length; i++) hits += KernelHelpers.MapLookupElem(handle, keys[i], 0, 0, 0) != 0 ? 1UL : 0;
        MapEpoch.Exit();
        return hits;
    }
}

/// <summary>
/// LPM_TRIE lookups two ways in one run: through the helper (the prefix index: lengths probed longest first,
/// or in binary search over markers above <see cref="LpmTrieMap.LinearSearchMaxLengths"/> lengths) and by the trie walk alone
/// (<see cref="LpmTrieMap.LookupElemByWalk"/>, the lookup before the index). Per lookup: divide by the keys
/// (200 for lpm200, 1000 otherwise).
/// </summary>
public unsafe class LpmTrieBenchmarks
{
    /// <summary>The map under test (see <see cref="MapBenchmarks.Build"/>).</summary>
    [Params("lpm200", "lpm100k", "lpm16len", "lpm25len")]
    public string Map { get; set; } = "";

    LpmTrieMap _map = null!;
    ulong[] _keys = [];
    byte* _keyMemory;

    /// <summary>Builds the map and the probe keys.</summary>
    [GlobalSetup]
    public void Setup()
    {
        (var map, _keys, nint memory) = MapBenchmarks.Build(Map);
        _map = (LpmTrieMap)map;
        _keyMemory = (byte*)memory;
        Console.WriteLine($"// {Map}: {_map.Count} prefixes, {_map.DistinctPrefixLengths} lengths, {_map.IndexMarkers} index markers");
    }

    /// <summary>Frees the map and the keys.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _map.Dispose();
        NativeMemory.Free(_keyMemory);
    }

    /// <summary>Every probe key through <c>bpf_map_lookup_elem</c> (what programs call).</summary>
    [Benchmark(Baseline = true)]
    public ulong Lookup()
    {
        ulong handle = _map.Handle, hits = 0;
        var keys = _keys;
        MapEpoch.Enter();
        for (int i = 0; i < keys.Length; i++) hits += KernelHelpers.MapLookupElem(handle, keys[i], 0, 0, 0) != 0 ? 1UL : 0;
        MapEpoch.Exit();
        return hits;
    }

    /// <summary>Every probe key by the trie walk alone.</summary>
    [Benchmark]
    public ulong Walk()
    {
        ulong hits = 0;
        var keys = _keys;
        var map = _map;
        MapEpoch.Enter();
        for (int i = 0; i < keys.Length; i++) hits += map.LookupElemByWalk(keys[i]) != 0 ? 1UL : 0;
        MapEpoch.Exit();
        return hits;
    }
}

/// <summary>The read section of deferred reclamation that wraps every program run.</summary>
public class EpochBenchmarks
{
    /// <summary>MapEpoch.Enter + Exit.</summary>
    [Benchmark]
    public void EnterExit()
    {
        MapEpoch.Enter();
        MapEpoch.Exit();
    }
}
