using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>ARRAY and PERCPU_ARRAY: the userspace API with every flag and error, and program-side access on every engine.</summary>
[TestFixture]
public class ArrayMapTests
{
    static IEnumerable<TestCaseData> UpdateCases()
    {
        yield return new TestCaseData(0u, UpdateFlags.Any, 0).SetName("update index 0 BPF_ANY");
        yield return new TestCaseData(3u, UpdateFlags.Exist, 0).SetName("update last index BPF_EXIST");
        yield return new TestCaseData(1u, UpdateFlags.NoExist, -Errno.EEXIST).SetName("update BPF_NOEXIST is EEXIST");
        yield return new TestCaseData(4u, UpdateFlags.Any, -Errno.E2BIG).SetName("update past the end is E2BIG");
        yield return new TestCaseData(0u, 3ul, -Errno.EINVAL).SetName("update flags 3 is EINVAL");
        yield return new TestCaseData(0u, UpdateFlags.Lock, -Errno.EINVAL).SetName("update BPF_F_LOCK without a lock is EINVAL");
    }

    [TestCaseSource(nameof(UpdateCases))]
    public void Update(uint index, ulong flags, int expected)
    {
        using var map = MapFactory.Create(MapType.Array, 4, 8, 4, 0, "arr");
        Assert.That(map.Update(U32(index), U64(0x1122334455667788), flags), Is.EqualTo(expected));
        if (expected != 0) return;
        var value = new byte[8];
        Assert.That(map.Lookup(U32(index), value), Is.EqualTo(0));
        Assert.That(BitConverter.ToUInt64(value), Is.EqualTo(0x1122334455667788));
    }

    [Test]
    public void LookupDeleteAndNextKey()
    {
        using var map = MapFactory.Create(MapType.Array, 4, 4, 3, 0, "arr");
        var value = new byte[4];
        var next = new byte[4];
        Assert.Multiple(() =>
        {
            Assert.That(map.Lookup(U32(2), value), Is.EqualTo(0));
            Assert.That(value, Is.EqualTo(new byte[4]), "elements start zeroed");
            Assert.That(map.Lookup(U32(3), value), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Delete(U32(0)), Is.EqualTo(-Errno.EINVAL));
            Assert.That(map.GetNextKey([], next), Is.EqualTo(0));
            Assert.That(BitConverter.ToUInt32(next), Is.EqualTo(0u));
            Assert.That(map.GetNextKey(U32(0), next), Is.EqualTo(0));
            Assert.That(BitConverter.ToUInt32(next), Is.EqualTo(1u));
            Assert.That(map.GetNextKey(U32(2), next), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.GetNextKey(U32(99), next), Is.EqualTo(0), "an absent key restarts at 0");
            Assert.That(BitConverter.ToUInt32(next), Is.EqualTo(0u));
            Assert.That(map.Keys().Select(k => BitConverter.ToUInt32(k)), Is.EqualTo(new uint[] { 0, 1, 2 }));
            Assert.That(map.Lookup(U32(0), value, UpdateFlags.Lock), Is.EqualTo(-Errno.EINVAL));
        });
    }

    [Test]
    public void AccessFlagsAndFreeze()
    {
        using var rdonly = MapFactory.Create(MapType.Array, 4, 4, 2, MapFlags.ReadOnly, "ro");
        using var wronly = MapFactory.Create(MapType.Hash, 4, 4, 2, MapFlags.WriteOnly, "wo");
        using var rodata = MapFactory.Create(MapType.Array, 4, 4, 1, MapFlags.ReadOnlyProg, ".rodata");
        var value = new byte[4];
        var next = new byte[4];
        Assert.Multiple(() =>
        {
            Assert.That(rdonly.Update(U32(0), value), Is.EqualTo(-Errno.EPERM));
            Assert.That(rdonly.Lookup(U32(0), value), Is.EqualTo(0));
            Assert.That(wronly.Update(U32(0), value), Is.EqualTo(0));
            Assert.That(wronly.Lookup(U32(0), value), Is.EqualTo(-Errno.EPERM));
            Assert.That(wronly.GetNextKey([], next), Is.EqualTo(-Errno.EPERM));
            Assert.That(wronly.Delete(U32(0)), Is.EqualTo(0));
            Assert.That(rodata.Update(U32(0), U32(7)), Is.EqualTo(0));
            Assert.That(rodata.Freeze(), Is.EqualTo(0));
            Assert.That(rodata.Freeze(), Is.EqualTo(-Errno.EPERM), "a frozen map has lost its write permission (Linux: EPERM)");
            Assert.That(rodata.IsFrozen, Is.True);
            Assert.That(rodata.Update(U32(0), U32(8)), Is.EqualTo(-Errno.EPERM));
            Assert.That(rodata.Lookup(U32(0), value), Is.EqualTo(0));
            Assert.That(BitConverter.ToUInt32(value), Is.EqualTo(7u));
        });
    }

    [Test]
    public void WrongSpanLengthsAreCallerBugs()
    {
        using var map = MapFactory.Create(MapType.Array, 4, 4, 3, 0, "arr");
        Assert.Throws<ArgumentException>(() => map.Lookup(new byte[8], new byte[4]));
        Assert.Throws<ArgumentException>(() => map.Update(U32(0), new byte[3]));
    }

    [Test]
    public void TypedApi()
    {
        using var map = MapFactory.Create(MapType.Array, 4, 8, 2, 0, "typed");
        Assert.That(map.Update(1u, 42ul), Is.EqualTo(0));
        Assert.That(map.Lookup(1u, out ulong v), Is.EqualTo(0));
        Assert.That(v, Is.EqualTo(42ul));
    }

    [Test]
    public void LockedUpdateKeepsTheLockWordAndLookupHidesIt()
    {
        using var map = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "locked", spinLockOffset: 0);
        var value = new byte[16];
        Array.Fill(value, (byte)0xab);
        Assert.That(map.Update(U32(0), value, UpdateFlags.Lock), Is.EqualTo(0));
        var read = new byte[16];
        Assert.That(map.Lookup(U32(0), read, UpdateFlags.Lock), Is.EqualTo(0));
        Assert.That(read[..4], Is.EqualTo(new byte[4]), "the lock word reads as 0");
        Assert.That(read[4..], Is.All.EqualTo(0xab));
        unsafe
        {
            Assert.That(*(int*)((ArrayMap)map).Data, Is.EqualTo(0), "the lock is free afterwards, not overwritten by 0xab");
        }
    }

    const string ReadIndex = """
        stxw [%r10-4], %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, miss
        ldxdw %r0, [%r0]
        exit
        miss:
        mov %r0, 7777
        exit
        """;

    [Test]
    public void ProgramLooksUpByIndex([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(MapType.Array, 4, 8, 4, 0, "arr");
        map.Update(2u, 0xdead_beef_0000_0001ul);
        var run = Prepare(engine, ReadIndex, map);
        Assert.Multiple(() =>
        {
            Assert.That(Run(run, 2), Is.EqualTo(0xdead_beef_0000_0001ul));
            Assert.That(Run(run, 0), Is.EqualTo(0ul));
            Assert.That(Run(run, 4), Is.EqualTo(7777ul), "out of range is NULL");
        });
    }

    const string UpdateThenDelete = """
        stw [%r10-4], 1
        stdw [%r10-16], 0
        stxdw [%r10-16], %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        mov %r6, %r0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 3
        lsh %r0, 32
        or %r0, %r6
        exit
        """;

    [Test]
    public void ProgramUpdatesAndCannotDelete([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(MapType.Array, 4, 8, 4, 0, "arr");
        ulong r0 = Run(engine, UpdateThenDelete, 99, map);
        Assert.That((int)(uint)r0, Is.EqualTo(0), "update result");
        Assert.That((int)(r0 >> 32), Is.EqualTo(-Errno.EINVAL), "delete result");
        Assert.That(map.Lookup(1u, out ulong v), Is.EqualTo(0));
        Assert.That(v, Is.EqualTo(99ul));
    }

    // Increments the u32 counter in this CPU's slot of element 0 (the value is 4 bytes: a 64-bit add would
    // run past it into the slot's padding, which the memory-safe interpreter refuses).
    const string CountPerCpu = """
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r1, 1
        lock add32 [%r0+0], %r1
        mov %r0, 0
        out:
        exit
        """;

    [Test]
    public void PerCpuArraySlots([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = (PerCpuArrayMap)MapFactory.Create(MapType.PerCpuArray, 4, 4, 2, 0, "pc");
        Assert.That(map.UserValueSize, Is.EqualTo(8 * Cpu.Count), "slots are rounded up to 8 bytes");
        var run = Prepare(engine, CountPerCpu, map);
        const int runs = 2000;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            try { for (int i = 0; i < runs / 4; i++) Run(run); }
            catch (Exception e) { errors.Enqueue(e); }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.That(errors, Is.Empty, "runs on the worker threads");
        var all = new byte[map.UserValueSize];
        Assert.That(map.Lookup(U32(0), all), Is.EqualTo(0));
        var slots = Enumerable.Range(0, Cpu.Count).Select(c => BitConverter.ToUInt32(all, c * 8)).ToArray();
        Assert.That(slots.Sum(s => (long)s), Is.EqualTo(runs), "every run counted in some CPU's slot");
        Assert.That(Enumerable.Range(0, Cpu.Count).All(c => BitConverter.ToUInt32(all, c * 8 + 4) == 0), "padding stays zero");

        // Userspace writes every slot; a program sees its own.
        var fill = new byte[map.UserValueSize];
        for (int c = 0; c < Cpu.Count; c++) BitConverter.GetBytes((uint)(100 + c)).CopyTo(fill, c * 8);
        Assert.That(map.Update(U32(1), fill), Is.EqualTo(0));
        Assert.That(map.Update(U32(1), fill, UpdateFlags.NoExist), Is.EqualTo(-Errno.EEXIST));
        Assert.That(map.Update(U32(2), fill), Is.EqualTo(-Errno.E2BIG));
        Assert.That(map.Update(U32(1), fill, UpdateFlags.Lock), Is.EqualTo(-Errno.EINVAL));
        unsafe
        {
            MapEpoch.Enter();
            ulong key = 1;
            ulong address = map.LookupElem((ulong)&key);
            MapEpoch.Exit();
            var candidates = Enumerable.Range(0, Cpu.Count).Select(c => map.SlotAddress(1, c)).ToList();
            Assert.That(candidates, Does.Contain(address));
            int cpu = candidates.IndexOf(address);
            Assert.That(*(uint*)address, Is.EqualTo((uint)(100 + cpu)));
        }
    }
}
