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
        var rng = new Random(1);
        var probes = new List<byte[]>();
        switch (Map)
        {
            case "array":
                _map = MapFactory.Create(MapType.Array, 4, 8, 1024, 0, "a");
                probes.AddRange(Enumerable.Range(0, 1024).Select(i => BitConverter.GetBytes((uint)i)));
                break;
            case "hash10k":
                _map = MapFactory.Create(MapType.Hash, 4, 8, 10_000, 0, "h");
                for (uint k = 0; k < 10_000; k++) Check(_map.Update(BitConverter.GetBytes(k * 2654435761u), BitConverter.GetBytes((ulong)k)));
                probes.AddRange(Enumerable.Range(0, 1000).Select(i => BitConverter.GetBytes((uint)i * 2654435761u)));
                break;
            case "lpm200":
                _map = MapFactory.Create(MapType.LpmTrie, 8, 8, 1024, MapFlags.NoPrealloc, "small");
                for (int i = 0; i < 200; i++)
                {
                    var key = new byte[8];
                    BitConverter.GetBytes(rng.Next(8, 33)).CopyTo(key, 0);
                    rng.NextBytes(key.AsSpan(4, 4));
                    Check(_map.Update(key, BitConverter.GetBytes((ulong)i)));
                    var probe = (byte[])key.Clone();
                    BitConverter.GetBytes(32).CopyTo(probe, 0);
                    probes.Add(probe);
                }
                break;
            default:
                // tubular's bindings: prefixlen, protocol, port, IPv4-mapped IPv6 address (23-byte keys)
                _map = MapFactory.Create(MapType.LpmTrie, 23, 8, 1_000_000, MapFlags.NoPrealloc, "bindings");
                for (int i = 0; i < 100_000; i++)
                {
                    var key = new byte[23];
                    BitConverter.GetBytes(24 + 96 + rng.Next(16, 33)).CopyTo(key, 0);
                    key[4] = 6;
                    BitConverter.GetBytes((ushort)rng.Next(1, 65536)).CopyTo(key, 5);
                    key[17] = 0xff; key[18] = 0xff;
                    rng.NextBytes(key.AsSpan(19, 4));
                    Check(_map.Update(key, BitConverter.GetBytes((ulong)i)));
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
        _keyMemory = (byte*)NativeMemory.Alloc((nuint)(size * probes.Count));
        _keys = new ulong[probes.Count];
        for (int i = 0; i < probes.Count; i++)
        {
            probes[i].CopyTo(new Span<byte>(_keyMemory + i * size, size));
            _keys[i] = (ulong)(_keyMemory + i * size);
        }
        // Every probe must hit, or the benchmark would time the miss path.
        MapEpoch.Enter();
        try
        {
            foreach (var k in _keys)
                if (KernelHelpers.MapLookupElem(_map.Handle, k, 0, 0, 0) == 0) throw new InvalidOperationException($"{Map}: a probe missed");
        }
        finally
        {
            MapEpoch.Exit();
        }
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
