using System.Diagnostics;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Maps;

/// <summary>
/// LPM_TRIE lookups racing insert/delete churn (issue 17 item 1): every prefix a lookup returns must cover
/// the key. A small map keeps the prefix index at its smallest table, so a deleted /32's tombstoned slot is
/// soon reused by an insert of another prefix — the interleaving in which the old reader matched the old
/// node under the new slot's length. Runs <see cref="DefaultSeconds"/> seconds; <c>BPFJIT_STRESS_SECONDS</c>
/// runs it longer (<c>BPFJIT_STRESS_SECONDS=120 dotnet test tests -c Release --filter FullyQualifiedName~LpmRaceTests</c>).
/// </summary>
[TestFixture, NonParallelizable]
public unsafe class LpmRaceTests
{
    const double DefaultSeconds = 3;

    // More threads than processors: a reader preempted between two loads of one probe is what exposes a race.
    static readonly int Readers = Math.Max(4, 2 * Environment.ProcessorCount);

    static double Seconds => double.TryParse(Environment.GetEnvironmentVariable("BPFJIT_STRESS_SECONDS"), out double s) && s > 0 ? s : DefaultSeconds;

    /// <summary>An IPv4 LPM key: prefix length, then the address in network order.</summary>
    static byte[] Key(int length, uint address) => [.. BitConverter.GetBytes(length), (byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address];

    /// <summary>The value stored under a prefix names it: prefix length and address, so a reader can check it covers its key.</summary>
    static byte[] Value(int length, uint address) => [.. BitConverter.GetBytes((uint)length), .. BitConverter.GetBytes(address)];

    static bool Covers(uint length, uint prefix, uint address) => length == 0 || ((prefix ^ address) >> (32 - (int)length)) == 0;

    /// <summary>
    /// Readers (the program helper's pointer path and userspace copies, more threads than processors) look up
    /// random addresses in 10.1.2.0/24 while a writer inserts and deletes /32s, /25s and the /24 there over a
    /// permanent 10.0.0.0/8 and a permanent 10.1.2.77/32 (so lookups probe /32 and then the shorter lengths).
    /// Every answer must exist (the /8 always matches) and name a prefix that covers the key. Failed on the
    /// protocol that read a slot's node and its length separately (a /32 returned for a key it does not cover).
    /// </summary>
    [Test]
    public void EveryReturnedPrefixCoversTheKey()
    {
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 8, 64, MapFlags.NoPrealloc, "race");
        Assert.That(map.Update(Key(8, 0x0A000000), Value(8, 0x0A000000)), Is.EqualTo(0));
        Assert.That(map.Update(Key(32, 0x0A01024D), Value(32, 0x0A01024D)), Is.EqualTo(0));
        var deadline = Stopwatch.StartNew();
        double seconds = Seconds;
        long lookups = 0, updates = 0, bad = 0, missing = 0;
        string? firstBad = null;
        bool stop = false;
        var readers = Enumerable.Range(0, Readers).Select(r => new Thread(() =>
        {
            var rng = new Random(100 + r);
            var buffer = new byte[8];
            byte* key = stackalloc byte[8];
            long n = 0;
            while (!Volatile.Read(ref stop))
            {
                uint address = 0x0A010200u | (uint)rng.Next(256);
                uint length, prefix;
                if (r % 2 == 0)
                {
                    *(uint*)key = 32;
                    key[4] = 10; key[5] = 1; key[6] = (byte)(address >> 8); key[7] = (byte)address;
                    MapEpoch.Enter();
                    ulong p = KernelHelpers.MapLookupElem(map.Handle, (ulong)key, 0, 0, 0);
                    (length, prefix) = p == 0 ? (uint.MaxValue, 0u) : (*(uint*)p, *(uint*)(p + 4));
                    MapEpoch.Exit();
                }
                else if (map.Lookup(Key(32, address), buffer) == 0)
                    (length, prefix) = (BitConverter.ToUInt32(buffer), BitConverter.ToUInt32(buffer, 4));
                else
                    (length, prefix) = (uint.MaxValue, 0u);
                n++;
                if (length == uint.MaxValue) Interlocked.Increment(ref missing);
                else if (!Covers(length, prefix, address) && Interlocked.Increment(ref bad) == 1)
                    firstBad = $"key {address >> 24}.{(byte)(address >> 16)}.{(byte)(address >> 8)}.{(byte)address} got {prefix >> 24}.{(byte)(prefix >> 16)}.{(byte)(prefix >> 8)}.{(byte)prefix}/{length}";
            }
            Interlocked.Add(ref lookups, n);
        })).ToList();
        readers.ForEach(t => t.Start());
        // The writer cycles a /32 in the block through insert, delete, then the /24 (and the /25 under it) through
        // insert and delete: whenever the /32 and the /24 hash to one slot, the /24 reuses the /32's tombstone.
        var wrng = new Random(7);
        (int Length, uint Address)[] shorter = [(24, 0x0A010200u), (25, 0x0A010200u), (25, 0x0A010280u)];
        while (deadline.Elapsed.TotalSeconds < seconds && Volatile.Read(ref bad) == 0)
        {
            uint host = 0x0A010200u | (uint)wrng.Next(256);
            var (length, address) = shorter[wrng.Next(shorter.Length)];
            Assert.That(map.Update(Key(32, host), Value(32, host)), Is.EqualTo(0));
            Assert.That(map.Delete(Key(32, host)), Is.EqualTo(0));
            Assert.That(map.Update(Key(length, address), Value(length, address)), Is.EqualTo(0));
            Assert.That(map.Delete(Key(length, address)), Is.EqualTo(0));
            updates += 4;
        }
        Volatile.Write(ref stop, true);
        readers.ForEach(t => t.Join());
        TestContext.Out.WriteLine($"{deadline.Elapsed.TotalSeconds:F1} s: {lookups:N0} lookups, {updates:N0} updates, {bad} not covering, {missing} missing");
        Assert.Multiple(() =>
        {
            Assert.That(bad, Is.EqualTo(0), $"a lookup returned a prefix that does not cover its key (first: {firstBad})");
            Assert.That(missing, Is.EqualTo(0), "10.0.0.0/8 always matches");
            Assert.That(lookups, Is.GreaterThan(10_000), "the readers ran");
        });
    }
}
