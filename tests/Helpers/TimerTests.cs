using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// bpf_timer_init/set_callback/start/cancel on both engines: each errno of the kernel's helpers, callbacks that
/// really fire on the timer thread with the element's map, key and value, and the kernel's cancel-and-free when the
/// element is overwritten, deleted or the map disposed of.
/// </summary>
[TestFixture]
public class TimerTests
{
    // Value: u64 counter @0, struct bpf_timer @8, u64 result @24.
    const int TimerOff = 8, ValueSize = 32;

    // r1 = op | flags << 8 | key << 32, r2 = argument: the timer of the element at key (0 for an ARRAY of one).
    // ops: 0 init(clock = arg), 1 set_callback(count), 2 start(arg, flags), 3 cancel, 4 set_callback(selfcancel),
    // 5 set_callback(fault), 6 set_callback(keyed). Returns the helper's result, or -1 when the element is missing.
    const string Ops = """
        mov %r9, %r1
        and %r9, 255
        mov %r8, %r1
        rsh %r8, 8
        and %r8, 0xffffff
        mov %r7, %r2
        rsh %r1, 32
        stxw [%r10-4], %r1
        mov %r2, %r10
        add %r2, -4
        ldmap %r1, 0
        call 1
        jeq %r0, 0, fail
        mov %r6, %r0
        mov %r1, %r6
        add %r1, 8
        jne %r9, 0, op1
        ldmap %r2, 0
        mov %r3, %r7
        call 169
        exit
        op1:
        jne %r9, 1, op2
        ldfunc %r2, count
        call 170
        exit
        op2:
        jne %r9, 2, op3
        mov %r2, %r7
        mov %r3, %r8
        call 171
        exit
        op3:
        jne %r9, 3, op4
        call 172
        exit
        op4:
        jne %r9, 4, op5
        ldfunc %r2, selfcancel
        call 170
        exit
        op5:
        jne %r9, 5, op6
        ldfunc %r2, fault
        call 170
        exit
        op6:
        jne %r9, 6, fail
        ldfunc %r2, keyed
        call 170
        exit
        fail:
        mov %r0, -1
        exit
        count:
        ldxdw %r4, [%r3+0]
        add %r4, 1
        stxdw [%r3+0], %r4
        mov %r0, 0
        exit
        selfcancel:
        mov %r6, %r3
        mov %r1, %r3
        add %r1, 8
        call 172
        stxdw [%r6+24], %r0
        mov %r0, 0
        exit
        fault:
        mov %r1, 0
        ldxdw %r0, [%r1+0]
        mov %r0, 0
        exit
        keyed:
        ldxw %r4, [%r2+0]
        stxdw [%r3+24], %r4
        ldxdw %r4, [%r3+0]
        add %r4, 1
        stxdw [%r3+0], %r4
        mov %r0, 0
        exit
        """;

    static BpfMap TimerMap(MapType type = MapType.Array, int maxEntries = 1) =>
        MapFactory.Create(new MapDefinition("timers", type, 4, ValueSize, maxEntries, TimerOffset: TimerOff));

    static long Op(BpfEntry run, int op, ulong arg = 0, ulong flags = 0, uint key = 0) =>
        (long)Run(run, (uint)op | flags << 8 | (ulong)key << 32, arg);

    static ulong Field(BpfMap map, int offset, uint key = 0)
    {
        var value = new byte[ValueSize];
        Assert.That(map.Lookup(BitConverter.GetBytes(key), value), Is.Zero, "lookup");
        return BitConverter.ToUInt64(value, offset);
    }

    // Waits (up to 10 s, not a speed check) for something the timer thread does.
    static void WaitFor(Func<bool> done, string what)
    {
        var until = DateTime.UtcNow.AddSeconds(10);
        while (!done())
        {
            if (DateTime.UtcNow > until) Assert.Fail($"timed out waiting for: {what}");
            Thread.Sleep(1);
        }
    }

    [Test]
    public void ArmedTimerFiresOnceWithItsValue([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap();
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero, "init");
        Assert.That(Op(run, 1), Is.Zero, "set_callback");
        Assert.That(Op(run, 2, 1_000_000), Is.Zero, "start in 1 ms");
        WaitFor(() => Field(map, 0) == 1, "the callback's increment");
        // Re-arming runs the callback again; a timer is not periodic by itself.
        Assert.That(Op(run, 2, 0), Is.Zero, "start again, now");
        WaitFor(() => Field(map, 0) == 2, "the second increment");
        Assert.That(Op(run, 3), Is.Zero, "cancel after it fired: not armed");
    }

    [Test]
    public void CallbackGetsTheElementsKey([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var array = TimerMap(MapType.Array, 4);
        using var hash = TimerMap(MapType.Hash, 4);
        Assert.That(hash.Update(BitConverter.GetBytes(7u), new byte[ValueSize]), Is.Zero);
        foreach (var (map, key) in new[] { (array, 3u), (hash, 7u) })
        {
            var run = Prepare(engine, Ops, map);
            Assert.That(Op(run, 0, BpfTimers.ClockBoottime, key: key), Is.Zero, "init");
            Assert.That(Op(run, 6, key: key), Is.Zero, "set_callback");
            Assert.That(Op(run, 2, 0, key: key), Is.Zero, "start");
            WaitFor(() => Field(map, 0, key) == 1, $"{map.Type}: the callback ran");
            Assert.That(Field(map, 24, key), Is.EqualTo(key), $"{map.Type}: the key the callback read");
        }
    }

    [Test]
    public void Errnos([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap();
        var run = Prepare(engine, Ops, map);
        Assert.Multiple(() =>
        {
            Assert.That(Op(run, 1), Is.EqualTo(-Errno.EINVAL), "set_callback before init");
            Assert.That(Op(run, 2, 10), Is.EqualTo(-Errno.EINVAL), "start before init");
            Assert.That(Op(run, 3), Is.EqualTo(-Errno.EINVAL), "cancel before init");
            Assert.That(Op(run, 0, 2), Is.EqualTo(-Errno.EINVAL), "CLOCK_PROCESS_CPUTIME_ID");
            Assert.That(Op(run, 0, 8), Is.EqualTo(-Errno.EINVAL), "CLOCK_REALTIME_ALARM");
            Assert.That(Op(run, 0, 16 + BpfTimers.ClockMonotonic), Is.EqualTo(-Errno.EINVAL), "a clock id at or above MAX_CLOCKS");
            Assert.That(Op(run, 0, BpfTimers.ClockRealtime), Is.Zero, "init");
            Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.EqualTo(-Errno.EBUSY), "init twice");
            Assert.That(Op(run, 2, 10), Is.EqualTo(-Errno.EINVAL), "start without a callback");
            Assert.That(Op(run, 1), Is.Zero, "set_callback");
            Assert.That(Op(run, 2, 10, flags: 4), Is.EqualTo(-Errno.EINVAL), "unknown start flag");
            Assert.That(Op(run, 2, 3_600_000_000_000, flags: BpfTimers.FlagCpuPin), Is.Zero, "start in an hour, pinned");
            Assert.That(Op(run, 3), Is.EqualTo(1), "cancel an armed timer");
            Assert.That(Op(run, 3), Is.Zero, "cancel it again");
            Assert.That(Op(run, 2, ulong.MaxValue, flags: BpfTimers.FlagAbs), Is.Zero, "absolute time far ahead");
            Assert.That(Op(run, 3), Is.EqualTo(1), "cancel it");
        });
    }

    [Test]
    public void AbsoluteTimeInThePastFiresAtOnce([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap();
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero);
        Assert.That(Op(run, 1), Is.Zero);
        Assert.That(Op(run, 2, 1, flags: BpfTimers.FlagAbs), Is.Zero, "1 ns after boot, long past");
        WaitFor(() => Field(map, 0) == 1, "the callback");
    }

    [Test]
    public void CancellingItselfIsADeadlock([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap();
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero);
        Assert.That(Op(run, 4), Is.Zero);
        Assert.That(Op(run, 2, 0), Is.Zero);
        WaitFor(() => Field(map, 24) != 0, "the callback's cancel result");
        Assert.That((long)Field(map, 24), Is.EqualTo(-Errno.EDEADLK));
    }

    [Test]
    public void AFaultingCallbackIsContained([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap(MapType.Array, 2);
        var run = Prepare(engine, Ops, map);
        long faults = BpfTimers.FaultCount;
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero);
        Assert.That(Op(run, 5), Is.Zero);
        Assert.That(Op(run, 2, 0), Is.Zero);
        WaitFor(() => BpfTimers.FaultCount > faults, "the fault to be counted");
        Assert.That(BpfTimers.LastFault, Is.Not.Null);
        // The timer thread carries on: another timer still fires.
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic, key: 1), Is.Zero);
        Assert.That(Op(run, 1, key: 1), Is.Zero);
        Assert.That(Op(run, 2, 0, key: 1), Is.Zero);
        WaitFor(() => Field(map, 0, 1) == 1, "a later callback");
    }

    [Test]
    public void OverwritingAnArrayElementFreesItsTimer([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap(maxEntries: 2);
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero);
        Assert.That(Op(run, 1), Is.Zero);
        Assert.That(Op(run, 2, 20_000_000), Is.Zero, "armed for 20 ms");
        var value = new byte[ValueSize];
        value.AsSpan(TimerOff, 16).Fill(0xff);   // userspace bytes over the timer field are not copied
        Assert.That(map.Update(BitConverter.GetBytes(0u), value), Is.Zero);
        Assert.That(Op(run, 3), Is.EqualTo(-Errno.EINVAL), "the element's timer is gone");
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero, "and can be initialised again");
        // A witness due after the freed timer would have been: the one timer thread fires in deadline order, so once
        // the witness has run, the freed timer's moment has passed (no sleep that guesses how long is enough).
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic, key: 1), Is.Zero);
        Assert.That(Op(run, 1, key: 1), Is.Zero);
        Assert.That(Op(run, 2, 40_000_000, key: 1), Is.Zero, "the witness, armed for 40 ms");
        WaitFor(() => Field(map, 0, 1) == 1, "the witness's callback");
        Assert.That(Field(map, 0), Is.Zero, "the cancelled callback never ran");
    }

    [Test]
    public void DeletingAHashElementFreesItsTimer([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap(MapType.Hash, 4);
        var key = BitConverter.GetBytes(5u);
        Assert.That(map.Update(key, new byte[ValueSize]), Is.Zero);
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic, key: 5), Is.Zero);
        Assert.That(Op(run, 1, key: 5), Is.Zero);
        Assert.That(Op(run, 2, 3_600_000_000_000, key: 5), Is.Zero);
        int live = BpfTimers.LiveCount;
        Assert.That(map.Delete(key), Is.Zero);
        Assert.That(BpfTimers.LiveCount, Is.LessThan(live), "the deleted element's timer is freed");
        Assert.That(map.Update(key, new byte[ValueSize]), Is.Zero);
        Assert.That(Op(run, 3, key: 5), Is.EqualTo(-Errno.EINVAL), "a new element starts without a timer");
    }

    [Test]
    public void ReplacingAHashElementFreesItsTimer([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = TimerMap(MapType.LruHash, 4);
        var key = BitConverter.GetBytes(9u);
        Assert.That(map.Update(key, new byte[ValueSize]), Is.Zero);
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic, key: 9), Is.Zero);
        Assert.That(map.Update(key, new byte[ValueSize]), Is.Zero);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic, key: 9), Is.Zero, "the replacement has no timer yet");
    }

    [Test]
    public void DisposingTheMapFreesItsTimersAndRefusesNewOnes([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        var map = TimerMap(MapType.Array, 2);
        var run = Prepare(engine, Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero);
        Assert.That(Op(run, 1), Is.Zero);
        Assert.That(Op(run, 2, 3_600_000_000_000), Is.Zero);
        // The program still holds the map; only its owner let go (the kernel's last user reference).
        map.AddRef();
        try
        {
            map.Dispose();
            Assert.That(Op(run, 3), Is.EqualTo(-Errno.EINVAL), "the armed timer was freed");
            Assert.That(Op(run, 0, BpfTimers.ClockMonotonic, key: 1), Is.EqualTo(-Errno.EPERM), "no new timer on a map without users");
        }
        finally
        {
            map.Release();
        }
    }

    [Test]
    public void UserspaceSeesTheTimerFieldZeroed()
    {
        using var map = TimerMap();
        var run = Prepare("interpreter", Ops, map);
        Assert.That(Op(run, 0, BpfTimers.ClockMonotonic), Is.Zero);
        Assert.That(Field(map, TimerOff) | Field(map, TimerOff + 8), Is.Zero);
    }

    [TestCase(MapType.PerCpuArray, 8, Errno.EOPNOTSUPP)]
    [TestCase(MapType.PerCpuHash, 8, Errno.EOPNOTSUPP)]
    [TestCase(MapType.Array, 4, Errno.EINVAL)]
    [TestCase(MapType.Array, 24, Errno.EINVAL)]
    public void MapsThatCannotHoldATimer(MapType type, int offset, int errno)
    {
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Create(new MapDefinition("t", type, 4, ValueSize, 1, TimerOffset: offset)));
        Assert.That(e!.Errno, Is.EqualTo(errno));
    }
}
