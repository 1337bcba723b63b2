using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>HASH, PERCPU_HASH, LRU_HASH: the userspace API with every flag and error, LRU eviction, program-side access.</summary>
[TestFixture]
public class HashMapTests
{
    static IEnumerable<TestCaseData> FlagCases()
    {
        // (key present before?, flags, expected)
        yield return new TestCaseData(false, UpdateFlags.Any, 0).SetName("BPF_ANY creates");
        yield return new TestCaseData(true, UpdateFlags.Any, 0).SetName("BPF_ANY replaces");
        yield return new TestCaseData(false, UpdateFlags.NoExist, 0).SetName("BPF_NOEXIST creates");
        yield return new TestCaseData(true, UpdateFlags.NoExist, -Errno.EEXIST).SetName("BPF_NOEXIST on a present key is EEXIST");
        yield return new TestCaseData(false, UpdateFlags.Exist, -Errno.ENOENT).SetName("BPF_EXIST on an absent key is ENOENT");
        yield return new TestCaseData(true, UpdateFlags.Exist, 0).SetName("BPF_EXIST replaces");
        yield return new TestCaseData(true, 3ul, -Errno.EINVAL).SetName("flags 3 is EINVAL");
        yield return new TestCaseData(true, UpdateFlags.Lock, -Errno.EINVAL).SetName("BPF_F_LOCK without a lock is EINVAL");
    }

    [TestCaseSource(nameof(FlagCases))]
    public void UpdateFlagsLikeTheKernel(bool present, ulong flags, int expected)
    {
        using var map = MapFactory.Create(MapType.Hash, 8, 8, 4, 0, "h");
        if (present) Assert.That(map.Update(5ul, 1ul), Is.EqualTo(0));
        Assert.That(map.Update(5ul, 2ul, flags), Is.EqualTo(expected));
        int lookup = map.Lookup(5ul, out ulong value);
        if (expected == 0) Assert.That(value, Is.EqualTo(2ul));
        else if (present) Assert.That(value, Is.EqualTo(1ul));
        else Assert.That(lookup, Is.EqualTo(-Errno.ENOENT));
    }

    [TestCase(MapType.Hash)]
    [TestCase(MapType.PerCpuHash)]
    public void FullMapIsE2BigButReplacingStillWorks(MapType type)
    {
        using var map = MapFactory.Create(type, 4, 4, 2, 0, "full");
        var value = new byte[map.UserValueSize];
        Assert.Multiple(() =>
        {
            Assert.That(map.Update(U32(1), value), Is.EqualTo(0));
            Assert.That(map.Update(U32(2), value), Is.EqualTo(0));
            Assert.That(map.Update(U32(3), value), Is.EqualTo(-Errno.E2BIG));
            Assert.That(map.Update(U32(2), value), Is.EqualTo(0), "replacing an existing key needs no new slot");
            Assert.That(map.Delete(U32(1)), Is.EqualTo(0));
            Assert.That(map.Delete(U32(1)), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Update(U32(3), value), Is.EqualTo(0));
        });
    }

    [Test]
    public void NextKeyWalksEveryKeyOnce()
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 4, 1000, 0, "walk");
        for (uint k = 0; k < 700; k++) Assert.That(map.Update(k * 7919, k), Is.EqualTo(0));
        var keys = map.Keys().Select(k => BitConverter.ToUInt32(k)).ToList();
        Assert.That(keys, Has.Count.EqualTo(700));
        Assert.That(keys.Order(), Is.EqualTo(Enumerable.Range(0, 700).Select(k => (uint)k * 7919)));
        var next = new byte[4];
        Assert.That(map.GetNextKey(U32(123456), next), Is.EqualTo(0), "an absent key restarts at the first");
        Assert.That(BitConverter.ToUInt32(next), Is.EqualTo(keys[0]));
        Assert.That(map.GetNextKey(U32(keys[^1]), next), Is.EqualTo(-Errno.ENOENT));
        using var empty = MapFactory.Create(MapType.Hash, 4, 4, 10, 0, "empty");
        Assert.That(empty.GetNextKey([], next), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Entries().Count(), Is.EqualTo(700));
    }

    [Test]
    public void LongKeysHashAndCompareWhole()
    {
        using var map = MapFactory.Create(MapType.Hash, 257, 8, 64, 0, "destinations");
        var a = new byte[257];
        var b = new byte[257];
        b[256] = 1;   // differs only in the last byte
        Assert.That(map.Update(a, U64(1)), Is.EqualTo(0));
        Assert.That(map.Update(b, U64(2)), Is.EqualTo(0));
        var v = new byte[8];
        map.Lookup(b, v);
        Assert.That(BitConverter.ToUInt64(v), Is.EqualTo(2ul));
        map.Lookup(a, v);
        Assert.That(BitConverter.ToUInt64(v), Is.EqualTo(1ul));
    }

    static unsafe ulong ProgramLookup(BpfMap map, uint key)
    {
        using (MapEpoch.Protect()) return map.LookupElem((ulong)&key);
    }

    [Test]
    public void LruEvictsTheLeastRecentlyUsed()
    {
        using var map = MapFactory.Create(MapType.LruHash, 4, 4, 4, 0, "lru");
        for (uint k = 1; k <= 4; k++) Assert.That(map.Update(k, k), Is.EqualTo(0));
        Assert.That(map.Lookup(2u, out uint _), Is.EqualTo(0), "a userspace lookup is not a use");
        Assert.That(ProgramLookup(map, 1), Is.Not.EqualTo(0ul), "a program uses 1 again");
        Assert.That(map.Update(5u, 5u), Is.EqualTo(0), "a full LRU map evicts instead of failing");
        Assert.Multiple(() =>
        {
            Assert.That(map.Lookup(2u, out uint _), Is.EqualTo(-Errno.ENOENT), "2 was the least recently used");
            Assert.That(map.Lookup(1u, out uint _), Is.EqualTo(0));
            Assert.That(map.Lookup(3u, out uint _), Is.EqualTo(0));
            Assert.That(map.Lookup(5u, out uint _), Is.EqualTo(0));
            Assert.That(((HashMap)map).Count, Is.EqualTo(4));
        });
        // No program used anything since: the oldest in the list (3; 1 moved behind 5) goes next.
        Assert.That(map.Update(6u, 6u), Is.EqualTo(0));
        Assert.That(map.Lookup(3u, out uint _), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Lookup(1u, out uint _), Is.EqualTo(0));
        Assert.That(((HashMap)map).Count, Is.EqualTo(4));
        Assert.That(map.Keys().Count(), Is.EqualTo(4));
    }

    [Test]
    public void LruUnderChurnKeepsTheHotKey()
    {
        using var map = MapFactory.Create(MapType.LruHash, 4, 4, 16, 0, "lru");
        map.Update(0u, 0u);
        for (uint k = 1; k < 1000; k++)
        {
            Assert.That(ProgramLookup(map, 0), Is.Not.EqualTo(0ul), $"hot key lost at {k}");
            Assert.That(map.Update(k, k), Is.EqualTo(0));
        }
        Assert.That(map.Keys().Count(), Is.EqualTo(16));
    }

    [Test]
    public void PerCpuHashSlots()
    {
        using var map = MapFactory.Create(MapType.PerCpuHash, 4, 12, 4, 0, "pch");
        Assert.That(map.UserValueSize, Is.EqualTo(16 * Cpu.Count));
        var value = new byte[map.UserValueSize];
        for (int c = 0; c < Cpu.Count; c++) value[c * 16] = (byte)(c + 1);
        Assert.That(map.Update(U32(9), value), Is.EqualTo(0));
        var read = new byte[map.UserValueSize];
        Assert.That(map.Lookup(U32(9), read), Is.EqualTo(0));
        Assert.That(read, Is.EqualTo(value));
    }

    [Test]
    public void LockedUpdateAndLookup()
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "lk", spinLockOffset: 4);
        Assert.That(map.Update(U32(1), U64(0xffff_ffff_0000_0007), UpdateFlags.Lock), Is.EqualTo(0), "BPF_ANY | BPF_F_LOCK creates");
        var read = new byte[8];
        Assert.That(map.Lookup(U32(1), read, UpdateFlags.Lock), Is.EqualTo(0));
        Assert.That(BitConverter.ToUInt64(read), Is.EqualTo(7ul), "the lock word is not copied in or out");
        Assert.That(map.Update(U32(1), U64(8), UpdateFlags.Lock | UpdateFlags.NoExist), Is.EqualTo(-Errno.EEXIST));
        Assert.That(map.Update(U32(1), U64(9), UpdateFlags.Lock | UpdateFlags.Exist), Is.EqualTo(0));
        map.Lookup(U32(1), read);
        Assert.That(BitConverter.ToUInt64(read), Is.EqualTo(9ul));
    }

    // r1 = key: looks it up; if absent, inserts key -> key*2 and returns 1000 + the update's result; else returns the value.
    const string LookupOrInsert = """
        stxw [%r10-4], %r1
        mov %r6, %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, insert
        ldxw %r0, [%r0]
        exit
        insert:
        mov %r7, %r6
        lsh %r7, 1
        stxw [%r10-8], %r7
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 1
        call 2
        add %r0, 1000
        exit
        """;

    const string DeleteKey = """
        stxw [%r10-4], %r1
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 3
        exit
        """;

    [TestCase(MapType.Hash)]
    [TestCase(MapType.LruHash)]
    public void ProgramLookupInsertDelete(MapType type)
    {
        foreach (var engine in Engines.Names)
        {
            using var map = MapFactory.Create(type, 4, 4, 2, 0, "prog");
            var lookup = Prepare(engine, LookupOrInsert, map);
            var delete = Prepare(engine, DeleteKey, map);
            Assert.Multiple(() =>
            {
                Assert.That(Run(lookup, 21), Is.EqualTo(1000ul), $"{engine}: inserted");
                Assert.That(Run(lookup, 21), Is.EqualTo(42ul), $"{engine}: found");
                Assert.That(Run(lookup, 22), Is.EqualTo(1000ul));
                ulong third = Run(lookup, 23);
                Assert.That(third, Is.EqualTo(type == MapType.LruHash ? 1000ul : (ulong)(1000 - Errno.E2BIG)), $"{engine}: third key in a 2-entry map");
                // The LRU evicted 22, not 21: 21 was looked up, so it had a second chance.
                Assert.That((long)Run(delete, 21), Is.EqualTo(0), $"{engine}: delete");
                Assert.That((long)Run(delete, 21), Is.EqualTo(-Errno.ENOENT));
            });
        }
    }

    [Test]
    public void ProgramInsertIntoPerCpuHashWritesOneSlot([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(MapType.PerCpuHash, 4, 4, 2, 0, "pch");
        Assert.That(Run(Prepare(engine, LookupOrInsert, map), 21), Is.EqualTo(1000ul));
        var all = new byte[map.UserValueSize];
        Assert.That(map.Lookup(U32(21), all), Is.EqualTo(0));
        var slots = Enumerable.Range(0, Cpu.Count).Select(c => BitConverter.ToUInt32(all, c * 8)).ToArray();
        Assert.That(slots.Count(v => v == 42), Is.EqualTo(1), "the running CPU's slot holds the value");
        Assert.That(slots.Count(v => v == 0), Is.EqualTo(Cpu.Count - 1), "the other slots start zeroed");
    }
}
