using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// BPF_MAP_LOOKUP_AND_DELETE_ELEM on the hash maps (the kernel's __htab_map_lookup_and_delete_elem, since 5.14): the value
/// comes out as a lookup gives it (every CPU's slot of a per-CPU map; special fields zeroed; under the value's lock with
/// BPF_F_LOCK) and the element is gone. The errnos of every flag are in <see cref="MapOperationKernelTests"/>.
/// </summary>
[TestFixture, NonParallelizable]   // MapMemory.Charged is process-wide
public class HashLookupAndDeleteTests
{
    [TestCase(MapType.Hash, 0u)]
    [TestCase(MapType.Hash, MapFlags.NoPrealloc)]
    [TestCase(MapType.LruHash, 0u)]
    [TestCase(MapType.PerCpuHash, 0u)]
    [TestCase(MapType.LruPerCpuHash, 0u)]
    public void The_value_comes_out_and_the_element_is_gone(MapType type, uint flags)
    {
        using var map = MapFactory.Create(type, 4, 12, 4, flags, "h");
        var key = BitConverter.GetBytes(7u);
        var value = Enumerable.Range(1, map.UserValueSize).Select(i => (byte)i).ToArray();
        Assert.That(map.Update(key, value), Is.EqualTo(0));
        Assert.That(map.Update(BitConverter.GetBytes(8u), value), Is.EqualTo(0));

        var got = new byte[map.UserValueSize];
        Assert.That(map.LookupAndDelete(key, got), Is.EqualTo(0));
        var expected = new byte[map.UserValueSize];
        map.Lookup(BitConverter.GetBytes(8u), expected);   // the same value as a lookup copies it (per-CPU slot padding included)
        Assert.Multiple(() =>
        {
            Assert.That(got, Is.EqualTo(expected));
            Assert.That(map.Lookup(key, new byte[map.UserValueSize]), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Keys().Select(k => BitConverter.ToUInt32(k)), Is.EqualTo(new[] { 8u }));
        });

        // A missing key is ENOENT and leaves the caller's buffer as it was.
        var untouched = Enumerable.Repeat((byte)0xAA, map.UserValueSize).ToArray();
        Assert.That(map.LookupAndDelete(key, untouched), Is.EqualTo(-Errno.ENOENT));
        Assert.That(untouched, Is.All.EqualTo((byte)0xAA));
    }

    [Test]
    public void An_element_allocated_on_insert_returns_its_charge()
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 4, MapFlags.NoPrealloc, "h");
        long before = MapMemory.Charged;
        Assert.That(map.Update(BitConverter.GetBytes(1u), new byte[8]), Is.EqualTo(0));
        Assert.That(MapMemory.Charged, Is.GreaterThan(before));
        Assert.That(map.LookupAndDelete(BitConverter.GetBytes(1u), new byte[8]), Is.EqualTo(0));
        Assert.That(MapMemory.Charged, Is.EqualTo(before));
    }

    /// <summary>
    /// A value with a bpf_spin_lock: BPF_F_LOCK is taken, the lock word comes out zeroed, the rest as stored; compared
    /// with the live kernel, step by step.
    /// </summary>
    [Test, Category(KernelOracle.Category)]
    public void With_a_spin_lock_the_value_comes_out_as_the_kernels()
    {
        KernelBpf.RequireAvailable();
        int fd = KernelBtf.CreateMapWithSpinLock((uint)MapType.Hash, 4, 16, 4, 0, lockOffset: 4);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), Errno.Name(-fd));
        using var map = MapFactory.Create(MapType.Hash, 4, 16, 4, 0, "locked", spinLockOffset: 4);
        var key = BitConverter.GetBytes(3u);
        var value = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
        try
        {
            foreach (ulong flags in new[] { UpdateFlags.Lock, 0UL, UpdateFlags.Lock | 2 })
            {
                int kUpdate = KernelBpf.Update(fd, key, value);
                int oUpdate = map.Update(key, value);
                var kValue = new byte[16];
                var oValue = new byte[16];
                int k = KernelBpf.LookupAndDelete(fd, key, kValue, flags);
                int o = map.LookupAndDelete(key, oValue, flags);
                int kAgain = KernelBpf.LookupAndDelete(fd, key, new byte[16], flags);
                int oAgain = map.LookupAndDelete(key, new byte[16], flags);
                if (!KernelOracle.Agrees(kUpdate == 0 && (k == 0 ? kAgain == -Errno.ENOENT : k == -Errno.EINVAL),
                        () => $"flags 0x{flags:x}: update {Errno.Name(kUpdate)}, lookup_and_delete {Errno.Name(k)} then {Errno.Name(kAgain)}"))
                    return;
                Assert.Multiple(() =>
                {
                    Assert.That(oUpdate, Is.EqualTo(kUpdate), $"flags 0x{flags:x}: update");
                    Assert.That(o, Is.EqualTo(k), $"flags 0x{flags:x}: lookup_and_delete");
                    Assert.That(oValue, Is.EqualTo(kValue), $"flags 0x{flags:x}: the value");
                    Assert.That(oAgain, Is.EqualTo(kAgain), $"flags 0x{flags:x}: again");
                });
                if (k != 0)
                {
                    KernelBpf.Delete(fd, key);
                    map.Delete(key);
                }
            }
        }
        finally { KernelBpf.Close(fd); }
    }
}
