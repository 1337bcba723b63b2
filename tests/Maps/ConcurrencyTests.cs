using System.Diagnostics;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>Readers on several threads while a writer updates and deletes: no torn value, no freed memory read; reclamation.</summary>
[TestFixture, NonParallelizable]
public class ConcurrencyTests
{
    const int Words = 8;   // value: 7 words equal to a sequence number, then its complement

    // Looks up key r1 and checks the value's words: 0 absent, 1 consistent, 2 torn.
    const string CheckValue = """
        stxw [%r10-4], %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, absent
        ldxdw %r1, [%r0]
        ldxdw %r2, [%r0+8]
        jne %r1, %r2, torn
        ldxdw %r2, [%r0+16]
        jne %r1, %r2, torn
        ldxdw %r2, [%r0+24]
        jne %r1, %r2, torn
        ldxdw %r2, [%r0+32]
        jne %r1, %r2, torn
        ldxdw %r2, [%r0+40]
        jne %r1, %r2, torn
        ldxdw %r2, [%r0+48]
        jne %r1, %r2, torn
        ldxdw %r2, [%r0+56]
        xor %r2, -1
        jne %r1, %r2, torn
        mov %r0, 1
        exit
        torn:
        mov %r0, 2
        exit
        absent:
        mov %r0, 0
        exit
        """;

    static byte[] Value(ulong seq)
    {
        var v = new byte[Words * 8];
        for (int i = 0; i < Words - 1; i++) BitConverter.GetBytes(seq).CopyTo(v, i * 8);
        BitConverter.GetBytes(~seq).CopyTo(v, (Words - 1) * 8);
        return v;
    }

    static bool Consistent(byte[] v)
    {
        ulong first = BitConverter.ToUInt64(v);
        for (int i = 1; i < Words - 1; i++) if (BitConverter.ToUInt64(v, i * 8) != first) return false;
        return BitConverter.ToUInt64(v, (Words - 1) * 8) == ~first;
    }

    [TestCase(MapType.Hash)]
    [TestCase(MapType.LruHash)]
    [TestCase(MapType.LpmTrie)]
    public void ReadersNeverSeeTornOrFreedValues(MapType type)
    {
        const int keys = 64;
        bool lpm = type == MapType.LpmTrie;
        using var map = lpm
            ? MapFactory.Create(type, 8, Words * 8, keys, MapFlags.NoPrealloc, "m")
            : MapFactory.Create(type, 4, Words * 8, type == MapType.LruHash ? keys / 2 : keys, 0, "m");
        byte[] Key(uint k) => lpm ? [.. U32(32), .. U32(k)] : U32(k);
        foreach (var engine in Engines.Names)
        {
            // For the LPM trie the program's 4-byte key is the address; it finds the /32 entry (same layout as key bytes 4..7).
            // (Replaced line by line: the raw literal's lines carry 4 spaces, so a multi-line pattern with 8 never matched,
            // and the trie was looked up with a 4-byte key plus whatever lay above the stack frame.)
            var check = Prepare(engine, lpm ? CheckValue.Replace("stxw [%r10-4], %r1", "stxw [%r10-4], %r1\nstw [%r10-8], 32").Replace("add %r2, -4", "add %r2, -8") : CheckValue, map);
            long reclaimedBefore = MapEpoch.Reclaimed;
            int torn = 0, found = 0, userTorn = 0;
            using var stop = new CancellationTokenSource();
            // Count-bounded: each reader does a fixed number of lookups while the writer churns, so a
            // loaded machine makes the test slower, never different.
            const int lookupsPerReader = 20_000;
            ulong seq = 0;
            for (uint k = 0; k < keys; k++) Assert.That(map.Update(Key(k), Value(++seq)), Is.EqualTo(0), "filled before the readers start");
            int readersLeft = 3;
            var readers = Enumerable.Range(0, 3).Select(r => new Thread(() =>
            {
                var rng = new Random(r);
                var buffer = new byte[Words * 8];
                for (int i = 0; i < lookupsPerReader; i++)
                {
                    uint k = (uint)rng.Next(keys);
                    ulong result = Run(check, k);
                    if (result == 2) Interlocked.Increment(ref torn);
                    if (result == 1) Interlocked.Increment(ref found);
                    if (map.Lookup(Key(k), buffer) == 0 && !Consistent(buffer)) Interlocked.Increment(ref userTorn);
                }
                Interlocked.Decrement(ref readersLeft);
            })).ToList();
            int walks = 0;
            readers.Add(new Thread(() =>
            {
                // Next-key walks and entry reads while elements come and go.
                while (!stop.IsCancellationRequested)
                {
                    foreach (var (_, value) in map.Entries())
                        if (!Consistent(value)) Interlocked.Increment(ref userTorn);
                    Interlocked.Increment(ref walks);
                }
            }));
            readers.ForEach(t => t.Start());
            var writerRng = new Random(42);
            // At least 2,000 writes whatever the scheduling: on a loaded machine the readers may finish before the
            // writer runs at all, and then nothing was replaced for the reclamation check below.
            for (int writes = 0; Volatile.Read(ref readersLeft) > 0 || Volatile.Read(ref walks) == 0 || writes < 2_000; writes++)
            {
                uint k = (uint)writerRng.Next(keys);
                if (writerRng.Next(5) == 0) map.Delete(Key(k));
                else Assert.That(map.Update(Key(k), Value(++seq)), Is.EqualTo(0));
            }
            stop.Cancel();
            readers.ForEach(t => t.Join());
            MapEpoch.Collect();
            Assert.Multiple(() =>
            {
                Assert.That(torn, Is.EqualTo(0), $"{engine}: programs saw torn values");
                Assert.That(userTorn, Is.EqualTo(0), $"{engine}: userspace saw torn values");
                Assert.That(found, Is.GreaterThan(0), $"{engine}: readers found values");
                Assert.That(walks, Is.GreaterThan(0), $"{engine}: the map was walked");
                Assert.That(MapEpoch.Reclaimed - reclaimedBefore, Is.GreaterThan(0), $"{engine}: replaced elements were freed");
                Assert.That(MapEpoch.Pending, Is.EqualTo(0), $"{engine}: nothing is left once every reader has left");
            });
        }
    }

    [Test]
    public unsafe void ReclamationWaitsForReadersToLeave()
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "r");
        map.Update(1u, 111ul);
        MapEpoch.Collect();
        using var entered = new ManualResetEventSlim();
        using var go = new ManualResetEventSlim();
        ulong seen = 0;
        var reader = new Thread(() =>
        {
            MapEpoch.Enter();
            uint key = 1;
            ulong* value = (ulong*)map.LookupElem((ulong)&key);
            entered.Set();
            go.Wait();
            seen = *value;              // the element was replaced meanwhile, but not freed
            MapEpoch.Exit();
        });
        reader.Start();
        entered.Wait();
        map.Update(1u, 222ul);          // retires the element the reader holds
        Assert.That(MapEpoch.Collect(), Is.EqualTo(0), "the reader may still read it");
        Assert.That(MapEpoch.Pending, Is.EqualTo(1));
        go.Set();
        reader.Join();
        Assert.That(seen, Is.EqualTo(111ul));
        Assert.That(MapEpoch.Collect(), Is.EqualTo(1), "freed once the reader left");
        Assert.That(MapEpoch.Pending, Is.EqualTo(0));
        map.Lookup(1u, out ulong now);
        Assert.That(now, Is.EqualTo(222ul));
    }

    [Test]
    public void ReaderThatEntersLaterDoesNotBlock()
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "r");
        map.Update(1u, 1ul);
        MapEpoch.Collect();
        map.Update(1u, 2ul);            // retired before the section below starts
        MapEpoch.Enter();
        try
        {
            Assert.That(MapEpoch.IsInside, Is.True);
            Assert.That(MapEpoch.Collect(), Is.EqualTo(1), "a reader entering after the retirement cannot hold the old element");
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    [Test]
    public void DeadThreadsGiveTheirSlotsBack()
    {
        static void Burst()
        {
            var threads = Enumerable.Range(0, 8).Select(_ => new Thread(() => { MapEpoch.Enter(); MapEpoch.Exit(); })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
        }
        Burst();
        int afterFirst = MapEpoch.ReaderSlots;
        for (int round = 0; round < 5; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Burst();
        }
        Assert.That(MapEpoch.ReaderSlots, Is.LessThanOrEqualTo(afterFirst + 8), "slots of dead threads are reused, not accumulated");
    }

    [Test]
    public void SectionsNest()
    {
        MapEpoch.Enter();
        MapEpoch.Enter();
        MapEpoch.Exit();
        Assert.That(MapEpoch.IsInside, Is.True);
        MapEpoch.Exit();
        Assert.That(MapEpoch.IsInside, Is.False);
        Assert.Throws<InvalidOperationException>(MapEpoch.Exit);
        using (MapEpoch.Protect()) Assert.That(MapEpoch.IsInside, Is.True);
        Assert.That(MapEpoch.IsInside, Is.False);
    }

    [Test]
    public void DisposeFreesTheMapAfterReaders()
    {
        var map = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "d");
        map.Update(1u, 1ul);
        MapEpoch.Collect();
        ulong handle = map.Handle;
        MapEpoch.Enter();
        try
        {
            map.Dispose();
            Assert.That(BpfMap.FromHandle(handle), Is.SameAs(map), "still resolvable while a reader may hold the handle");
            Assert.That(MapEpoch.Collect(), Is.EqualTo(0));
        }
        finally
        {
            MapEpoch.Exit();
        }
        Assert.That(MapEpoch.Collect(), Is.EqualTo(1));
    }
}
