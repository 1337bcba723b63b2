using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.SkLookup;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Elements allocated on insert are charged then, as the kernel charges what bpf_map_kmalloc_node allocates to the
/// map's memory cgroup: HASH and PERCPU_HASH elements with BPF_F_NO_PREALLOC, LPM_TRIE nodes, SOCKHASH entries.
/// With a small limit inserts end in ENOMEM; a delete returns its element's charge, so the next insert fits; freeing
/// the map returns what its elements still hold.
/// </summary>
[TestFixture, NonParallelizable]
public class ElementChargeTests
{
    long _savedLimit;
    long _baseline;

    [SetUp]
    public void Setup()
    {
        SocketMapBase.Register();
        _savedLimit = MapMemory.Limit;
        MapEpoch.Collect();
        _baseline = MapMemory.Charged;
    }

    [TearDown]
    public void Restore() => MapMemory.Limit = _savedLimit;

    /// <summary>Inserts keys 0, 1, 2, ... until one fails; returns how many fit and the failing errno.</summary>
    static (int Inserted, int Error) FillUntilFull(Func<int, int> insert)
    {
        for (int i = 0; ; i++)
        {
            int err = insert(i);
            if (err != 0) return (i, err);
        }
    }

    /// <summary>After the map is freed, everything it charged (creation and elements) is returned.</summary>
    void AssertFreed(BpfMap map)
    {
        map.Dispose();
        MapEpoch.Collect();
        Assert.That(MapMemory.Charged, Is.EqualTo(_baseline), "the map's remaining element charges are returned when it is freed");
    }

    [TestCase(MapType.Hash)]
    [TestCase(MapType.PerCpuHash)]
    public void A_hash_without_preallocation_is_charged_per_element_on_insert(MapType type)
    {
        // 10,000 elements preallocated would take more than the limit: without preallocation the map is created.
        MapMemory.Limit = _baseline + (256 << 10);
        var map = MapFactory.Create(type, 8, 16, 10_000, MapFlags.NoPrealloc, "lazy");
        long created = MapMemory.Charged - _baseline;
        var value = new byte[map.UserValueSize];
        int Insert(int i) => map.Update(BitConverter.GetBytes((long)i), value);

        var (inserted, error) = FillUntilFull(Insert);
        Assert.Multiple(() =>
        {
            Assert.That(created, Is.EqualTo(BpfMap.HeaderSize + 16384 * 8), "creation charges the header and the buckets only");
            Assert.That(error, Is.EqualTo(-Errno.ENOMEM));
            Assert.That(inserted, Is.GreaterThan(1000).And.LessThan(10_000));
            Assert.That(MapMemory.Charged, Is.LessThanOrEqualTo(MapMemory.Limit));
        });
        long full = MapMemory.Charged;
        // A HASH replacement allocates a new element (the old one goes after the readers), as the kernel's does; a
        // PERCPU_HASH writes its slots in place, as __htab_percpu_map_update_elem does.
        Assert.That(map.Update(BitConverter.GetBytes(0L), value), Is.EqualTo(type == MapType.Hash ? -Errno.ENOMEM : 0), "replacing an element when full");
        Assert.That(map.Delete(BitConverter.GetBytes(0L)), Is.Zero);
        Assert.That(MapMemory.Charged, Is.LessThan(full), "a delete returns its element's charge");
        Assert.That(Insert(inserted), Is.Zero, "so the next insert fits");
        Assert.That(Insert(inserted + 1), Is.EqualTo(-Errno.ENOMEM));
        AssertFreed(map);
    }

    [Test]
    public void A_preallocated_hash_is_charged_at_creation_and_not_on_insert()
    {
        using var map = MapFactory.Create(MapType.Hash, 8, 16, 1000, 0, "prealloc");
        long created = MapMemory.Charged;
        for (long i = 0; i < 1000; i++) Assert.That(map.Update(BitConverter.GetBytes(i), new byte[16]), Is.Zero);
        Assert.That(MapMemory.Charged, Is.EqualTo(created));
    }

    [Test]
    public void Lpm_trie_nodes_are_charged_on_insert_and_returned_on_delete()
    {
        MapMemory.Limit = _baseline + (16 << 10);
        var map = MapFactory.Create(MapType.LpmTrie, 8, 8, 1_000_000, MapFlags.NoPrealloc, "trie");
        // Key: prefixlen 32, then an IPv4 address: i spread over the address so most inserts also add a join node.
        static byte[] Key(int i) => [32, 0, 0, 0, .. BitConverter.GetBytes((uint)i * 2654435761u)];
        var value = new byte[8];
        var (inserted, error) = FillUntilFull(i => map.Update(Key(i), value));
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.EqualTo(-Errno.ENOMEM));
            Assert.That(inserted, Is.GreaterThan(10).And.LessThan(1000));
        });
        long full = MapMemory.Charged;
        for (int i = 0; i < inserted; i++) Assert.That(map.Delete(Key(i)), Is.Zero);
        Assert.That(MapMemory.Charged, Is.LessThan(full));
        Assert.That(MapMemory.Charged - _baseline, Is.LessThan(1024), "an empty trie holds only its fixed part");
        var (again, _) = FillUntilFull(i => map.Update(Key(i), value));
        Assert.That(again, Is.EqualTo(inserted), "the deletes returned every node's charge");
        AssertFreed(map);
    }

    [Test]
    public void Sockhash_entries_are_charged_on_insert_and_returned_on_delete_and_close()
    {
        MapMemory.Limit = _baseline + (4 << 10);
        using var ns = new NetNamespace();
        var a = SkTestSupport.Tcp(ns, "127.0.0.1:80");
        var b = SkTestSupport.Tcp(ns, "127.0.0.1:81");
        var map = (SockHash)MapFactory.Create(MapType.SockHash, 16, 8, 100_000, 0, "h");
        static byte[] Key(int i) => [.. BitConverter.GetBytes((long)i), .. new byte[8]];
        var (inserted, error) = FillUntilFull(i => map.Update(Key(i), i % 2 == 0 ? a : b));
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.EqualTo(-Errno.ENOMEM));
            Assert.That(inserted, Is.GreaterThan(10).And.LessThan(100));
        });
        Assert.That(map.Update(Key(0), b), Is.Zero, "a replacement keeps its entry's charge");
        Assert.That(map.Delete(Key(0)), Is.Zero);
        Assert.That(map.Update(Key(inserted), a), Is.Zero, "the delete made room");
        Assert.That(map.Update(Key(inserted + 1), a), Is.EqualTo(-Errno.ENOMEM));
        long full = MapMemory.Charged;
        a.Close();
        Assert.That(MapMemory.Charged, Is.LessThan(full), "the entries a closed socket leaves return their charge");
        Assert.That(map.Update(Key(inserted + 1), b), Is.Zero);
        AssertFreed(map);
    }
}
