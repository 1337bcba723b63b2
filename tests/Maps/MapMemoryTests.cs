using BpfJit.Runtime;
using System.Diagnostics;
using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Maps;

/// <summary>Map memory accounting (<see cref="MapMemory"/>) and the lazily committed value area of large arrays.</summary>
[TestFixture, NonParallelizable]
public class MapMemoryTests
{
    long _savedLimit;

    [SetUp]
    public void Save() => _savedLimit = MapMemory.Limit;

    [TearDown]
    public void Restore() => MapMemory.Limit = _savedLimit;

    [Test]
    public void A_map_larger_than_the_limit_is_refused_with_ENOMEM_before_anything_is_allocated()
    {
        MapMemory.Limit = 1 << 20;
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Create(MapType.Array, 4, 8, 1 << 17, name: "big"))!;
        Assert.Multiple(() =>
        {
            Assert.That(e.Errno, Is.EqualTo(Errno.ENOMEM));
            Assert.That(e.Message, Is.EqualTo("map big (Array): the map needs 1048640 bytes, more than the map memory limit of 1048576 bytes (-ENOMEM)"));
        });
    }

    [Test]
    public void Live_maps_share_the_limit_and_a_freed_map_returns_its_charge()
    {
        MapEpoch.Collect();
        MapMemory.Limit = MapMemory.Charged + (1 << 20);
        var first = MapFactory.Create(MapType.Array, 4, 8, 80_000, name: "first");
        Assert.That(Assert.Throws<MapCreateException>(() => MapFactory.Create(MapType.Array, 4, 8, 80_000, name: "second"))!.Errno, Is.EqualTo(Errno.ENOMEM));
        first.Dispose();
        MapEpoch.Collect();
        using var second = MapFactory.Create(MapType.Array, 4, 8, 80_000, name: "second");
        Assert.That(second.MaxEntries, Is.EqualTo(80_000));
    }

    [Test]
    public void A_preallocated_hash_is_charged_for_every_element_with_its_key_and_header()
    {
        var a = new MapAttributes(MapType.Hash, 512, 8, 1 << 20);
        // Buckets (2^20 pointers) + 2^20 elements of 32 header + 512 key + 8 value, + the 64-byte map header.
        Assert.That(MapMemory.Footprint(a), Is.EqualTo((ulong)(64 + (8L << 20) + (552L << 20))));
        MapMemory.Limit = 500 << 20;
        Assert.That(Assert.Throws<MapCreateException>(() => MapFactory.Create(MapType.Hash, 512, 8, 1 << 20))!.Errno, Is.EqualTo(Errno.ENOMEM));
    }

    [Test]
    public void Sizes_above_2_to_the_32_do_not_overflow_the_footprint()
    {
        var a = new MapAttributes(MapType.PerCpuHash, 4, 32768, uint.MaxValue);
        Assert.That(MapMemory.Footprint(a), Is.GreaterThan(ulong.MaxValue / (1UL << 40)));
    }

    /// <summary>2^32 elements of 2^33 bytes each pass 2^64: the footprint saturates instead of wrapping to a small charge.</summary>
    [Test]
    public void A_footprint_past_2_to_the_64_saturates()
    {
        var a = new MapAttributes(MapType.Hash, uint.MaxValue, uint.MaxValue, uint.MaxValue);
        Assert.That(MapMemory.Footprint(a), Is.EqualTo(ulong.MaxValue));
    }

    [Test]
    public void A_1_GiB_array_commits_no_memory_until_its_elements_are_written()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("lazily committed maps use mmap (Linux)");
        MapMemory.Limit = Math.Max(MapMemory.Limit, 2L << 30);
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        long before = self.WorkingSet64;
        using var map = (ArrayMap)MapFactory.Create(MapType.Array, 4, 8, 1 << 27, name: "lazy");
        self.Refresh();
        long grown = self.WorkingSet64 - before;
        uint last = (1u << 27) - 1;
        Assert.That(map.Update(last, 0x1122334455667788UL), Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(grown, Is.LessThan(64L << 20), "resident growth at creation of a 1 GiB array");
            Assert.That(map.Lookup(last, out ulong v), Is.Zero);
            Assert.That(v, Is.EqualTo(0x1122334455667788UL));
            Assert.That(map.Lookup(12345u, out ulong zero), Is.Zero);
            Assert.That(zero, Is.Zero);
        });
    }
}
