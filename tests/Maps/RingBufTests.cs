using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>RINGBUF: produce from programs, consume from userspace, the record format, full buffers, discard, wrap-around.</summary>
[TestFixture]
public class RingBufTests
{
    // Reserves 16 bytes, fills them with r1 and submits (even r1) or discards (odd r1): 1 submitted, 2 discarded, 0 full.
    const string ReserveProgram = """
        mov %r6, %r1
        ldmap %r1, 0
        mov %r2, 16
        mov %r3, 0
        call 131
        jeq %r0, 0, full
        stxdw [%r0], %r6
        stxdw [%r0+8], %r6
        mov %r1, %r0
        mov %r2, 0
        mov %r7, %r6
        and %r7, 1
        jeq %r7, 1, drop
        call 132
        mov %r0, 1
        exit
        drop:
        call 133
        mov %r0, 2
        exit
        full:
        mov %r0, 0
        exit
        """;

    // ringbuf_output(map, &r1, 8, r2)
    const string OutputProgram = """
        stxdw [%r10-8], %r1
        mov %r4, %r2
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -8
        mov %r3, 8
        call 130
        exit
        """;

    const string QueryProgram = """
        mov %r2, %r1
        ldmap %r1, 0
        call 134
        exit
        """;

    static RingBufMap Create() => (RingBufMap)MapFactory.Create(MapType.RingBuf, 0, 0, 4096, 0, "rb");

    static List<ulong> ConsumeAll(RingBufMap ring)
    {
        var got = new List<ulong>();
        ring.Drain(r => got.Add(BitConverter.ToUInt64(r)));
        return got;
    }

    [Test]
    public void ReserveSubmitDiscardConsume([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Create();
        var run = Prepare(engine, ReserveProgram, ring);
        for (ulong i = 0; i < 10; i++) Assert.That(Run(run, i), Is.EqualTo(i % 2 == 0 ? 1ul : 2ul));
        Assert.That(ring.AvailableData, Is.EqualTo(10 * 24), "10 records of 8 + 16 bytes");
        Assert.That(ConsumeAll(ring), Is.EqualTo(new ulong[] { 0, 2, 4, 6, 8 }), "discarded records are skipped");
        Assert.That(ring.AvailableData, Is.EqualTo(0));
        Assert.That(ring.TryRead(out _), Is.False);
    }

    [Test]
    public void FullBufferFailsThenWrapsAround([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Create();
        var reserve = Prepare(engine, ReserveProgram, ring);
        var output = Prepare(engine, OutputProgram, ring);
        int fitted = 0;
        while (Run(reserve, (ulong)fitted * 2) == 1) fitted++;
        Assert.That(fitted, Is.EqualTo(4096 / 24), "170 records of 24 bytes fit in 4096");
        Assert.That(Run(output, 1), Is.EqualTo(0ul), "a 16-byte record still fits in the last 16 bytes");
        Assert.That((long)Run(output, 3), Is.EqualTo(-Errno.EAGAIN), "ringbuf_output on a full buffer");
        Assert.That(ConsumeAll(ring), Has.Count.EqualTo(fitted + 1));
        Assert.That(ring.ProducerPosition, Is.EqualTo(4096));

        // Fill to offset 4080 again; the next 24-byte record does not fit before the end, so a 16-byte
        // padding record fills the tail and the record starts at offset 0.
        for (int i = 0; i < fitted; i++) Assert.That(Run(reserve, 0), Is.EqualTo(1ul));
        Assert.That(ConsumeAll(ring), Has.Count.EqualTo(fitted));
        for (ulong i = 0; i < 100; i++) Assert.That(Run(reserve, 1000 + 2 * i), Is.EqualTo(1ul));
        Assert.That(Run(output, 77, 0), Is.EqualTo(0ul));
        var got = ConsumeAll(ring);
        Assert.That(got, Is.EqualTo(Enumerable.Range(0, 100).Select(i => 1000ul + 2 * (ulong)i).Append(77ul)));
        Assert.That(ring.ConsumerPosition, Is.EqualTo(ring.ProducerPosition));
        Assert.That(ring.ProducerPosition, Is.EqualTo(4096 + 4080 + 16 + 100 * 24 + 16), "the pad counts as consumed space");
    }

    [Test]
    public void RecordHeaderAndBusyRecords()
    {
        using var ring = Create();
        ulong first = ring.Reserve(5, 0);
        Assert.That(first, Is.Not.EqualTo(0ul));
        unsafe
        {
            uint* header = (uint*)(first - 8);
            Assert.That(header[0], Is.EqualTo(5u | RingBufMap.BusyBit));
            Assert.That(header[1], Is.EqualTo(0u), "offset from the data start in 8-byte units");
            ulong second = ring.Reserve(3, 0);
            Assert.That(second - first, Is.EqualTo(16ul), "records are 8-byte aligned");
            Assert.That(((uint*)(second - 8))[1], Is.EqualTo(2u));
            RingBufMap.Commit(second, discard: false, 0);
            Assert.That(ring.Drain(_ => { }), Is.EqualTo(0), "the consumer stops at the busy first record");
            *(byte*)first = 0x5a;
            RingBufMap.Commit(first, discard: false, 0);
            Assert.That(header[0], Is.EqualTo(5u));
        }
        var sizes = new List<int>();
        Assert.That(ring.Drain(r => sizes.Add(r.Length)), Is.EqualTo(2));
        Assert.That(sizes, Is.EqualTo(new[] { 5, 3 }));
        Assert.That(ring.Reserve(8, 1), Is.EqualTo(0ul), "reserve flags must be 0");
        Assert.That(ring.Reserve(4096, 0), Is.EqualTo(0ul), "larger than the ring");
    }

    [Test]
    public void QueryAndOutputFlags([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Create();
        var query = Prepare(engine, QueryProgram, ring);
        var output = Prepare(engine, OutputProgram, ring);
        Assert.That(Run(output, 1, RingBufMap.NoWakeup), Is.EqualTo(0ul));
        Assert.That(Run(output, 2, RingBufMap.ForceWakeup), Is.EqualTo(0ul));
        Assert.That((long)Run(output, 3, 4), Is.EqualTo(-Errno.EINVAL));
        Assert.Multiple(() =>
        {
            Assert.That(Run(query, RingBufMap.QueryAvailData), Is.EqualTo(32ul));
            Assert.That(Run(query, RingBufMap.QueryRingSize), Is.EqualTo(4096ul));
            Assert.That(Run(query, RingBufMap.QueryProdPos), Is.EqualTo(32ul));
            Assert.That(Run(query, RingBufMap.QueryConsPos), Is.EqualTo(0ul));
            Assert.That(Run(query, 99), Is.EqualTo(0ul));
        });
        Assert.That(ring.TryRead(out var record), Is.True);
        Assert.That(BitConverter.ToUInt64(record), Is.EqualTo(1ul));
        Assert.That(Run(query, RingBufMap.QueryConsPos), Is.EqualTo(16ul));
    }

    [Test]
    public void ByteApiIsNotSupported()
    {
        using var ring = Create();
        Assert.Multiple(() =>
        {
            Assert.That(ring.Lookup([], []), Is.EqualTo(-Errno.ENOTSUPP));
            Assert.That(ring.Update([], []), Is.EqualTo(-Errno.ENOTSUPP));
            Assert.That(ring.Delete([]), Is.EqualTo(-Errno.ENOTSUPP));
            Assert.That(ring.GetNextKey([], []), Is.EqualTo(-Errno.ENOTSUPP));
        });
    }

    [Test]
    public void ConsumerWakesUpForData()
    {
        using var ring = Create();
        var producer = new Thread(() =>
        {
            Thread.Sleep(50);
            ulong sample = ring.Reserve(8, 0);
            RingBufMap.Commit(sample, discard: false, 0);
        });
        producer.Start();
        Assert.That(ring.WaitForData(TimeSpan.FromSeconds(10)), Is.True);
        producer.Join();
        Assert.That(ring.TryRead(out _), Is.True);
        Assert.That(ring.WaitForData(TimeSpan.FromMilliseconds(20)), Is.False);
    }

    [Test]
    public void ManyProducersOneConsumer()
    {
        using var ring = (RingBufMap)MapFactory.Create(MapType.RingBuf, 0, 0, 1 << 16, 0, "rb");
        const int perThread = 5000, threads = 3;
        long produced = 0;
        var seen = new HashSet<ulong>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            for (int i = 0; i < perThread; i++)
            {
                ulong value = ((ulong)t << 32) | (uint)i;
                ulong sample;
                while ((sample = ring.Reserve(16, 0)) == 0) Thread.Yield();
                unsafe { ((ulong*)sample)[0] = value; ((ulong*)sample)[1] = ~value; }
                RingBufMap.Commit(sample, discard: false, 0);
                Interlocked.Increment(ref produced);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        int bad = 0;
        while (seen.Count < perThread * threads)
        {
            ring.Drain(r =>
            {
                ulong v = BitConverter.ToUInt64(r), check = BitConverter.ToUInt64(r[8..]);
                if (check != ~v || !seen.Add(v)) bad++;
            });
            if (workers.All(w => !w.IsAlive) && ring.AvailableData == 0) break;
        }
        workers.ForEach(w => w.Join());
        ring.Drain(r => seen.Add(BitConverter.ToUInt64(r)));
        Assert.That(bad, Is.EqualTo(0));
        Assert.That(seen, Has.Count.EqualTo(perThread * threads));
    }
}
