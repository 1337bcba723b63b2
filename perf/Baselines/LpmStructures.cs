using System.Diagnostics;
using System.Globalization;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Baselines;

/// <summary>
/// <c>lpm structures</c>: the two lookup structures of LPM_TRIE side by side in one process (docs/perf.md,
/// "The lookup structures"): random prefixes over a few lengths, 65,536 full-length probes under them, ns per
/// lookup through the stride index (<see cref="LpmTrieMap.LookupElemByStride"/>) and
/// through the prefix index (<see cref="LpmTrieMap.LookupElemByIndex"/>), process CPU time, median of 3.
/// The map's choice between them for full-length lookups (<see cref="LpmTrieMap.StrideTablesBeyondCache"/>) comes from these figures.
/// </summary>
public static unsafe class LpmStructures
{
    /// <summary>Prints the table; returns the exit code.</summary>
    public static int Run()
    {
        Console.WriteLine("| family | lengths | prefixes | stride index ns | prefix index ns | stride tables | map reads the prefix index |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (int dataSize in new[] { 4, 16 })
            foreach (int count in new[] { 1000, 100_000 })
                foreach (int lengthCount in new[] { 1, 4, 8, 32 })
                    Row(dataSize, count, lengthCount);
        return 0;
    }

    static void Row(int dataSize, int count, int lengthCount)
    {
        var rng = new Random(1);
        int max = dataSize * 8, keySize = 4 + dataSize;
        int[] lengths = [.. Enumerable.Range(0, lengthCount).Select(i => lengthCount == 1 ? max : max - i * max / (lengthCount - 1)).Distinct()];
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, keySize, 4, 2_000_000, MapFlags.NoPrealloc, "structures");
        var stored = new List<byte[]>();
        var value = new byte[4];
        while (map.Count < count)
        {
            var k = new byte[keySize];
            rng.NextBytes(k);
            BitConverter.GetBytes(lengths[rng.Next(lengths.Length)]).CopyTo(k, 0);
            if (map.Update(k, value) == 0) stored.Add(k);
        }
        const int Probes = 65536;
        byte* probes = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)(Probes * keySize));
        for (int i = 0; i < Probes; i++)
        {
            var k = (byte[])stored[rng.Next(stored.Count)].Clone();
            for (int bit = BitConverter.ToInt32(k); bit < max; bit++)
                if (rng.Next(2) == 0) k[4 + (bit >> 3)] ^= (byte)(0x80 >> (bit & 7));
            BitConverter.GetBytes(max).CopyTo(k, 0);
            k.CopyTo(new Span<byte>(probes + i * keySize, keySize));
        }
        bool probesLengths = map.LookupsProbeLengths;
        var stride = new List<double>();
        var index = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            stride.Add(Time(map.LookupElemByStride, probes, keySize));
            index.Add(Time(map.LookupElemByIndex, probes, keySize));
        }
        System.Runtime.InteropServices.NativeMemory.Free(probes);
        string S(double x) => x.ToString("F1", CultureInfo.InvariantCulture);
        Console.WriteLine($"| IPv{(dataSize == 4 ? 4 : 6)} | {lengths.Length} | {count:N0} | {S(stride.Order().ElementAt(1))} | {S(index.Order().ElementAt(1))} | {map.StrideTables:N0} | {(probesLengths ? "yes" : "no")} |");
    }

    static double Time(Func<ulong, ulong> lookup, byte* probes, int keySize)
    {
        const int N = 2_000_000;
        ulong sink = 0;
        MapEpoch.Enter();
        var t0 = Process.GetCurrentProcess().TotalProcessorTime;
        for (int i = 0; i < N; i++) sink += lookup((ulong)(probes + (i & 65535) * keySize));
        var t1 = Process.GetCurrentProcess().TotalProcessorTime;
        MapEpoch.Exit();
        GC.KeepAlive(sink);
        return (t1 - t0).TotalNanoseconds / N;
    }
}
