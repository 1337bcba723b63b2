using System.Runtime.InteropServices;
using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Maps;

/// <summary>
/// <see cref="MapEpoch"/>'s reader publishes its slot with a plain store and no fence; the collector's
/// process-wide barrier must make that store visible before it scans the slots. Readers here load the
/// shared pointer right after entering (the store-then-load window a missing barrier opens) while a
/// writer swaps, retires and collects as fast as it can; a retired block is poisoned instead of freed,
/// so a premature "free" shows as a poisoned read rather than a crash. Count-bounded.
/// </summary>
[TestFixture, NonParallelizable]
public unsafe class EpochOrderingTests
{
    const long Live = 0x1122334455667788, Dead = unchecked((long)0xdeadbeefdeadbeef);

    static nint Block()
    {
        var p = (long*)NativeMemory.Alloc(64);
        *p = Live;
        return (nint)p;
    }

    [Test]
    public void ReadersNeverSeeRetiredMemory()
    {
        int lookups = int.TryParse(Environment.GetEnvironmentVariable("BPFJIT_STRESS_LOOKUPS"), out int n) ? n : 200_000;
        nint shared = Block();
        var poisoned = new List<nint>();
        long bad = 0, retired = 0;
        int readersLeft = 2;
        var readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            long seenDead = 0;
            for (int i = 0; i < lookups; i++)
            {
                MapEpoch.Enter();
                long* p = (long*)Volatile.Read(ref shared);
                long first = Volatile.Read(ref *p);
                for (int spin = 0; spin < (i & 63); spin++) Thread.SpinWait(1);
                long second = Volatile.Read(ref *p);
                MapEpoch.Exit();
                if (first != Live || second != Live) seenDead++;
            }
            Interlocked.Add(ref bad, seenDead);
            Interlocked.Decrement(ref readersLeft);
        })).ToList();
        readers.ForEach(t => t.Start());
        while (Volatile.Read(ref readersLeft) > 0)
        {
            nint old = Interlocked.Exchange(ref shared, Block());
            MapEpoch.Retire(() =>
            {
                Volatile.Write(ref *(long*)old, Dead);
                lock (poisoned) poisoned.Add(old);
            });
            retired++;
            MapEpoch.Collect();
        }
        readers.ForEach(t => t.Join());
        MapEpoch.Collect();
        lock (poisoned)
        {
            TestContext.Out.WriteLine($"{retired} blocks retired, {poisoned.Count} poisoned, {bad} reads of retired memory");
            foreach (var p in poisoned) NativeMemory.Free((void*)p);
            Assert.That(poisoned, Is.Not.Empty, "retired blocks were reclaimed while readers ran");
        }
        NativeMemory.Free((void*)shared);
        Assert.That(bad, Is.Zero, "a reader read a block after it was reclaimed");
    }
}
