using System.Diagnostics;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>Clocks, random numbers, the CPU id, perf_event_output, spin locks, and the helper table itself.</summary>
[TestFixture]
public class MiscHelperTests
{
    static ulong Call(string engine, int id, ulong r1 = 0) => Run(engine, $"call {id}\nexit", r1);

    [Test]
    public void Clocks([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        // Bracketed by Stopwatch reads (the same CLOCK_MONOTONIC on Linux): the bounds hold however loaded
        // the machine is. The sleep guarantees a lower bound on the advance, never an upper one.
        long outerStart = Stopwatch.GetTimestamp();
        ulong mono1 = Call(engine, KernelHelpers.KtimeGetNsId);
        Thread.Sleep(20);
        ulong mono2 = Call(engine, KernelHelpers.KtimeGetNsId);
        ulong outerNs = (ulong)(Stopwatch.GetElapsedTime(outerStart).Ticks * 100);
        ulong boot = Call(engine, KernelHelpers.KtimeGetBootNsId);
        ulong coarse = Call(engine, KernelHelpers.KtimeGetCoarseNsId);
        ulong jiffies = Call(engine, KernelHelpers.Jiffies64Id);
        Assert.Multiple(() =>
        {
            Assert.That(mono2 - mono1, Is.InRange(15_000_000ul, outerNs + 1_000_000ul), "CLOCK_MONOTONIC advances in ns");
            Assert.That(boot, Is.GreaterThanOrEqualTo(mono2), "boot time includes suspend, so it is never behind");
            Assert.That((double)coarse, Is.EqualTo((double)mono2).Within(1e9), "coarse is the same clock at tick resolution");
            ulong expected = KernelHelpers.InitialJiffies + mono2 / (1_000_000_000 / KernelHelpers.JiffiesHz);
            Assert.That((double)jiffies, Is.EqualTo((double)expected).Within(KernelHelpers.JiffiesHz));
        });
    }

    [Test]
    public void TaiClockAndNumaNode([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        ulong utc = (ulong)((DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100);
        ulong tai = Call(engine, KernelHelpers.KtimeGetTaiNsId);
        Assert.That(tai, Is.InRange(utc - 1_000_000_000, utc + 40_000_000_000), "CLOCK_TAI is UTC plus the TAI offset (0 to 37 s)");
        Assert.That(Call(engine, KernelHelpers.GetNumaNodeIdId), Is.EqualTo(0ul));
    }

    // map_lookup_percpu_elem(map, &key0, r1): the value in that CPU's slot, or 0xffff when NULL.
    const string PerCpuLookup = """
        mov %r3, %r1
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 195
        jeq %r0, 0, null
        ldxw %r0, [%r0]
        exit
        null:
        mov %r0, 0xffff
        exit
        """;

    [TestCase(MapType.PerCpuArray)]
    [TestCase(MapType.PerCpuHash)]
    [TestCase(MapType.Array)]
    public void LookupPercpuElem(MapType type)
    {
        using var map = MapFactory.Create(type, 4, 4, 2, 0, "pc");
        var value = new byte[map.UserValueSize];
        for (int c = 0; c < value.Length / 8; c++) BitConverter.GetBytes((uint)(10 + c)).CopyTo(value, c * 8);
        if (type == MapType.Array) value = U32(5);
        Assert.That(map.Update(U32(0), value), Is.EqualTo(0));
        foreach (var engine in Engines.Names)
        {
            var run = Prepare(engine, PerCpuLookup, map);
            if (type == MapType.Array)
            {
                Assert.That(Run(run, 0), Is.EqualTo(0xfffful), "not a per-CPU map: NULL");
                continue;
            }
            for (int c = 0; c < Cpu.Count; c++) Assert.That(Run(run, (ulong)c), Is.EqualTo((ulong)(10 + c)), $"{engine}: cpu {c}");
            Assert.That(Run(run, (ulong)Cpu.Count), Is.EqualTo(0xfffful), "cpu out of range: NULL");
        }
    }

    [Test]
    public void RandomAndCpu([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        var values = Enumerable.Range(0, 200).Select(_ => Call(engine, KernelHelpers.GetPrandomU32Id)).ToList();
        Assert.That(values, Is.All.LessThanOrEqualTo((ulong)uint.MaxValue));
        Assert.That(values.Distinct().Count(), Is.GreaterThan(190));
        Assert.That(values.Any(v => v > int.MaxValue), Is.True, "the high bit is used");
        Assert.That(Call(engine, KernelHelpers.GetSmpProcessorIdId), Is.LessThan((ulong)Cpu.Count));
    }

    // perf_event_output(ctx, map, r2 as flags, &r1, 8)
    const string PerfOutput = """
        stxdw [%r10-8], %r1
        mov %r3, %r2
        ldmap %r2, 0
        mov %r4, %r10
        add %r4, -8
        mov %r5, 8
        call 25
        exit
        """;

    [Test]
    public void PerfEventOutput([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var events = (PerfEventArrayMap)MapFactory.Create(MapType.PerfEventArray, 4, 4, 2, 0, "events");
        var run = Prepare(engine, PerfOutput, events);
        var got = new List<(int, ulong)>();
        Assert.That((long)Run(run, 1, 0), Is.EqualTo(-Errno.ENOENT), "no sink at index 0");
        events.SetSink(0, (i, d) => got.Add((i, BitConverter.ToUInt64(d))));
        events.SetSink(1, (i, d) => got.Add((i, BitConverter.ToUInt64(d))));
        Assert.Multiple(() =>
        {
            Assert.That(Run(run, 11, 0), Is.EqualTo(0ul));
            Assert.That(Run(run, 12, 1), Is.EqualTo(0ul));
            Assert.That((long)Run(run, 13, 2), Is.EqualTo(-Errno.E2BIG));
            Assert.That((long)Run(run, 14, 1ul << 32), Is.EqualTo(-Errno.EINVAL), "only index bits");
        });
        Assert.That(got, Is.EqualTo(new[] { (0, 11ul), (1, 12ul) }));
        // BPF_F_CURRENT_CPU picks the running CPU's index: on a machine with more CPUs than entries it may be out of range.
        long current = (long)Run(run, 15, PerfEventArrayMap.CurrentCpu);
        if (current == 0) Assert.That(got[^1].Item2, Is.EqualTo(15ul));
        else Assert.That(current, Is.EqualTo(-Errno.E2BIG));
        if (Cpu.Count <= 2) Assert.That(current, Is.EqualTo(0L));
        Assert.That(events.Delete(MapPrograms.U32(1)), Is.EqualTo(0));
        Assert.That(events.Delete(MapPrograms.U32(1)), Is.EqualTo(-Errno.ENOENT));
        // The kernel takes a perf event fd here; this runtime has none, so any fd is a bad one (sinks attach with SetSink).
        Assert.That(events.Update(MapPrograms.U32(0), MapPrograms.U32(3)), Is.EqualTo(-Errno.EBADF));
    }

    // Element 0 = { bpf_spin_lock; u32 pad; u64 counter }: lock, counter++ non-atomically, unlock.
    const string LockedIncrement = """
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        mov %r1, %r6
        call 93
        ldxdw %r1, [%r6+8]
        add %r1, 1
        stxdw [%r6+8], %r1
        mov %r1, %r6
        call 94
        out:
        mov %r0, 0
        exit
        """;

    [Test]
    public void SpinLockSerialisesPrograms([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "locked", spinLockOffset: 0);
        var run = Prepare(engine, LockedIncrement, map);
        const int threads = 4, each = 20_000;
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => { for (int i = 0; i < each; i++) Run(run); })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        var value = new byte[16];
        Assert.That(map.Lookup(U32(0), value, UpdateFlags.Lock), Is.EqualTo(0));
        Assert.That(BitConverter.ToUInt64(value, 8), Is.EqualTo((ulong)threads * each), "no increment lost");
    }

    [Test]
    public void HelperTableDefinesEachHelperOnce()
    {
        var table = KernelHelpers.Table();
        var ids = KernelHelpers.All.Select(h => h.Id).ToList();
        Assert.That(ids, Is.Unique);
        Assert.That(ids, Is.EquivalentTo(new[] { 1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 17, 22, 25, 35, 37, 42, 55, 80, 87, 88, 89, 93, 94, 105, 106, 109, 112, 113, 114, 115, 117, 118, 120, 123, 125, 130, 131, 132, 133, 134, 136, 137, 138, 139, 140, 141, 148, 149, 153, 154, 156, 157, 158, 160, 164, 165, 169, 170, 171, 172, 175, 176, 177, 178, 180, 181, 182, 191, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 208, 209, 210, 211 }));
        foreach (var helper in KernelHelpers.All)
        {
            Assert.That(table.TryGet(helper.Id, out var h), Is.True);
            Assert.That(h.Method.IsStatic && h.Method.IsPublic, helper.Name);
            Assert.That(h.Name, Does.StartWith("bpf_"));
        }
        Assert.That(table.TryGet(KernelHelpers.TailCallId, out var tail) && tail.Exit == HelperExit.TailCall);
        Assert.That(table.TryGet(KernelHelpers.RingbufReserveId, out var reserve) && reserve.Proto.AcquiresReference);
        Assert.That(table.TryGet(KernelHelpers.MapLookupElemId, out var lookup) && lookup.Proto.Ret == RetType.PtrToMapValueOrNull);
    }

    [Test]
    public void ClockMatchesStopwatchOnLinux()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("CLOCK_MONOTONIC is compared with Stopwatch on Linux only");
        // Both read CLOCK_MONOTONIC: ours lies between two Stopwatch reads taken around it (1 µs for rounding).
        double before = Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency);
        ulong ours = KernelHelpers.KtimeGetNs(0, 0, 0, 0, 0);
        double after = Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency);
        Assert.That((double)ours, Is.InRange(before - 1e3, after + 1e3));
    }
}
