using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// BPF_MAP_TYPE_USER_RINGBUF: libbpf's producer side (reserve, submit, discard) and bpf_user_ringbuf_drain with
/// its callback reading each sample through bpf_dynptr_read or bpf_dynptr_data, on both engines.
/// </summary>
[TestFixture]
public class UserRingBufTests
{
    // drain(map, cb, &sum, flags = r1): (samples << 32) | sum, or the error. cb reads the sample's first u64 with
    // dynptr_read, adds it and stops after 99; a read error stores -7 in sum and stops.
    const string DrainSum = """
        stdw [%r10-8], 0
        mov %r4, %r1
        ldmap %r1, 0
        ldfunc %r2, cb
        mov %r3, %r10
        add %r3, -8
        call 209
        jslt %r0, 0, out
        mov %r6, %r0
        ldxdw %r0, [%r10-8]
        lsh %r6, 32
        or %r0, %r6
        out:
        exit
        cb:
        mov %r6, %r2
        mov %r3, %r1
        mov %r1, %r10
        add %r1, -8
        mov %r2, 8
        mov %r4, 0
        mov %r5, 0
        call 201
        jne %r0, 0, bad
        ldxdw %r1, [%r10-8]
        ldxdw %r2, [%r6+0]
        add %r2, %r1
        stxdw [%r6+0], %r2
        mov %r0, 0
        jne %r1, 99, done
        mov %r0, 1
        done:
        exit
        bad:
        stxdw [%r6+0], %r0
        mov %r0, 1
        exit
        """;

    // The same sum through bpf_dynptr_data (NULL for a sample shorter than 8 bytes: adds nothing).
    const string DrainSlices = """
        stdw [%r10-8], 0
        ldmap %r1, 0
        ldfunc %r2, cb
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 209
        jslt %r0, 0, out
        mov %r6, %r0
        ldxdw %r0, [%r10-8]
        lsh %r6, 32
        or %r0, %r6
        out:
        exit
        cb:
        mov %r6, %r2
        mov %r2, 0
        mov %r3, 8
        call 203
        jeq %r0, 0, skip
        ldxdw %r1, [%r0+0]
        ldxdw %r2, [%r6+0]
        add %r2, %r1
        stxdw [%r6+0], %r2
        skip:
        mov %r0, 0
        exit
        """;

    // A callback that drains the same ring again and returns that result through ctx.
    const string Nested = """
        stdw [%r10-8], 0
        ldmap %r1, 0
        ldfunc %r2, cb
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 209
        ldxdw %r0, [%r10-8]
        exit
        cb:
        mov %r6, %r2
        ldmap %r1, 0
        ldfunc %r2, inner
        mov %r3, 0
        mov %r4, 0
        call 209
        stxdw [%r6+0], %r0
        mov %r0, 1
        exit
        inner:
        mov %r0, 0
        exit
        """;

    static UserRingBufMap Ring(int size = 4096) => (UserRingBufMap)MapFactory.Create(MapType.UserRingBuf, 0, 0, size, 0, "user_rb");

    static void Put(UserRingBufMap ring, params ulong[] values)
    {
        foreach (var v in values) Assert.That(ring.Write(U64(v)), Is.Zero);
    }

    static ulong Result(ulong samples, ulong sum) => samples << 32 | sum;

    [Test]
    public void DrainsSubmittedSamplesInOrder([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSum, ring);
        Assert.That(Run(run), Is.Zero, "an empty ring: 0 samples");
        Put(ring, 1, 2, 3);
        Assert.That(Run(run), Is.EqualTo(Result(3, 6)));
        Assert.That(Run(run), Is.Zero, "drained");
    }

    [Test]
    public void ACallbackReturningOneStopsAfterItsSample([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSum, ring);
        Put(ring, 5, 99, 7);
        Assert.That(Run(run), Is.EqualTo(Result(2, 104)), "the sample that stopped the drain counts and is consumed");
        Assert.That(Run(run), Is.EqualTo(Result(1, 7)));
    }

    [Test]
    public void DiscardedSamplesAreSkippedAndABusyOneStopsTheDrain([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSum, ring);
        Assert.That(ring.Reserve(8, out var dropped), Is.Zero);
        ring.Discard(dropped);
        Put(ring, 4);
        Assert.That(ring.Reserve(8, out var pending), Is.Zero);
        BitConverter.TryWriteBytes(pending.Span, 10ul);
        Put(ring, 20);
        Assert.That(Run(run), Is.EqualTo(Result(1, 4)), "the discarded sample is not counted; the drain stops at the busy one");
        ring.Submit(pending);
        Assert.That(Run(run), Is.EqualTo(Result(2, 30)));
    }

    [Test]
    public void FlagsAndNestedDrains([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSum, ring);
        Put(ring, 1);
        Assert.That((long)Run(run, 4), Is.EqualTo(-Errno.EINVAL), "unknown flag");
        Assert.That(Run(run, RingBufMap.NoWakeup | RingBufMap.ForceWakeup), Is.EqualTo(Result(1, 1)), "BPF_RB_NO_WAKEUP and BPF_RB_FORCE_WAKEUP");
        Put(ring, 2);
        Assert.That((long)Run(Prepare(engine, Nested, ring)), Is.EqualTo(-Errno.EBUSY), "a drain inside a drain of the same ring");
    }

    [Test]
    public void DynptrReadPastTheSampleIsE2big([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSum, ring);
        Assert.That(ring.Write(new byte[4]), Is.Zero);
        // The callback stores dynptr_read's error as the sum; or-ing the count into a negative sum leaves it.
        Assert.That((long)Run(run), Is.EqualTo(-Errno.E2BIG), "8 bytes of a 4-byte sample");
    }

    [Test]
    public void DynptrDataGivesTheSampleOrNull([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSlices, ring);
        Put(ring, 40, 2);
        Assert.That(ring.Write(new byte[4]), Is.Zero);
        Assert.That(Run(run), Is.EqualTo(Result(3, 42)), "a 4-byte sample has no 8-byte slice");
    }

    [Test]
    public void SamplesWrapAroundTheRing([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var ring = Ring();
        var run = Prepare(engine, DrainSum, ring);
        // 3000-byte samples: the second starts past the middle and runs over the end of the data area.
        for (ulong i = 1; i <= 6; i++)
        {
            var sample = new byte[3000];
            BitConverter.TryWriteBytes(sample, i);
            Assert.That(ring.Write(sample), Is.Zero, $"sample {i}");
            Assert.That(Run(run), Is.EqualTo(Result(1, i)), $"sample {i}");
        }
    }

    [Test]
    public void ProducerErrors()
    {
        using var ring = Ring();
        Assert.That(ring.Reserve(4096, out _), Is.EqualTo(-Errno.E2BIG), "a sample and its header larger than the ring");
        Assert.That(ring.Reserve(4088, out var whole), Is.Zero, "exactly the ring");
        Assert.That(ring.Reserve(0, out _), Is.EqualTo(-Errno.ENOSPC), "no room until it is drained");
        ring.Discard(whole);
    }

    [TestCase(4097, 0, Errno.EINVAL)]
    [TestCase(8192 + 4096, 0, Errno.EINVAL)]
    [TestCase(4096, 4, Errno.EINVAL)]
    public void CreationChecks(int maxEntries, int keySize, int errno)
    {
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Create(MapType.UserRingBuf, keySize, 0, maxEntries));
        Assert.That(e!.Errno, Is.EqualTo(errno));
    }

    [Test]
    public void UserspaceMapOperationsAreNotSupported()
    {
        using var ring = Ring();
        Assert.That(ring.GetNextKey([], []), Is.EqualTo(-Errno.ENOTSUPP));
    }
}
