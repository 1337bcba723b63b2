using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Userspace map operations (lookup, update, delete, lookup_and_delete, get_next_key, freeze) with every update flag combination, on
/// keys in and out of range, on read-only, write-only and frozen maps: the same sequence runs on a BpfJit map and on
/// a kernel map of the same attributes, and every step must give the same errno. Map types whose values are file
/// descriptors (PROG_ARRAY, PERF_EVENT_ARRAY, CGROUP_ARRAY, SOCKMAP, SOCKHASH) run the steps that take no descriptor.
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class MapOperationKernelTests
{
    enum Op { Lookup, Update, Delete, NextKey, Freeze, LookupAndDelete }

    sealed record Step(Op Op, uint Key, ulong Flags = 0, bool NoKey = false)
    {
        public override string ToString() => $"{Op}{(NoKey ? " first" : $" key {Key}")}{(Flags != 0 ? $" flags 0x{Flags:x}" : "")}";
    }

    static IEnumerable<Step> Steps(bool fdValues)
    {
        yield return new(Op.Lookup, 0);
        yield return new(Op.Lookup, 0, UpdateFlags.Lock);
        yield return new(Op.Lookup, 0, 1);
        yield return new(Op.NextKey, 0, NoKey: true);
        if (!fdValues)
        {
            foreach (ulong f in new ulong[] { UpdateFlags.NoExist, UpdateFlags.Any, UpdateFlags.NoExist, UpdateFlags.Exist, 3, 8, UpdateFlags.Lock,
                         UpdateFlags.Lock | UpdateFlags.NoExist, UpdateFlags.Lock | UpdateFlags.Exist })
                yield return new(Op.Update, 0, f);
            yield return new(Op.Update, 1, UpdateFlags.Exist);
            yield return new(Op.Update, 1, UpdateFlags.Any);
            yield return new(Op.Update, 7, UpdateFlags.Any);      // out of range for arrays, the third element of a 2-entry hash
            yield return new(Op.Update, 7, UpdateFlags.Exist);
            yield return new(Op.Lookup, 1);
            // BPF_MAP_LOOKUP_AND_DELETE_ELEM: flags first (unknown, then F_LOCK without a lock), a missing key, then
            // the element comes out and is gone (hash maps; ENOTSUPP for the rest); put back for the steps below.
            foreach (ulong f in new ulong[] { 1, UpdateFlags.Lock, UpdateFlags.Lock | 1, 0 })
                yield return new(Op.LookupAndDelete, 7 + (uint)f % 2, f);
            yield return new(Op.LookupAndDelete, 1);
            yield return new(Op.LookupAndDelete, 1);
            yield return new(Op.Lookup, 1);
            yield return new(Op.Update, 1, UpdateFlags.Any);
        }
        yield return new(Op.LookupAndDelete, 0);
        yield return new(Op.Lookup, 7);
        yield return new(Op.NextKey, 0);
        yield return new(Op.NextKey, 1);
        yield return new(Op.NextKey, 7);
        yield return new(Op.Delete, 7);
        yield return new(Op.Delete, 0);
        yield return new(Op.Delete, 0);
        yield return new(Op.Freeze, 0);
        yield return new(Op.Freeze, 0);
        if (!fdValues) yield return new(Op.Update, 1, UpdateFlags.Any);
        yield return new(Op.LookupAndDelete, 1);
        yield return new(Op.Delete, 1);
        yield return new(Op.Lookup, 1);
        yield return new(Op.NextKey, 0, NoKey: true);
    }

    static IEnumerable<(MapType Type, int Key, int Value, uint Flags)> Maps()
    {
        foreach (uint access in new[] { 0u, MapFlags.ReadOnly, MapFlags.WriteOnly })
        {
            yield return (MapType.Array, 4, 8, access);
            yield return (MapType.Hash, 4, 8, access);
            yield return (MapType.Hash, 4, 8, access | MapFlags.NoPrealloc);
            yield return (MapType.PerCpuArray, 4, 8, access);
            yield return (MapType.PerCpuHash, 4, 8, access);
            yield return (MapType.LruHash, 4, 8, access);
            yield return (MapType.LruPerCpuHash, 4, 8, access);
            yield return (MapType.LpmTrie, 8, 8, access | MapFlags.NoPrealloc);
            yield return (MapType.ProgArray, 4, 4, access);
            yield return (MapType.PerfEventArray, 4, 4, access);
            yield return (MapType.CgroupArray, 4, 4, access);
            yield return (MapType.SockMap, 4, 8, access);
            yield return (MapType.SockHash, 4, 8, access);
        }
        yield return (MapType.RingBuf, 0, 0, 0);
    }

    [OneTimeSetUp]
    public void Setup() => SocketMapBase.Register();

    /// <summary>The key of index <paramref name="i"/>: a u32, or an LPM key of prefix length 32 and data <paramref name="i"/>.</summary>
    static byte[] Key(MapType type, int keySize, uint i)
    {
        var key = new byte[keySize];
        if (type == MapType.LpmTrie)
        {
            BitConverter.TryWriteBytes(key, 32u);
            BitConverter.TryWriteBytes(key.AsSpan(4), i);
        }
        else if (keySize >= 4) BitConverter.TryWriteBytes(key, i);
        return key;
    }

    [Test]
    public void Every_operation_and_flag_gets_the_kernels_errno()
    {
        KernelBpf.RequireAvailable();
        var differences = new List<string>();
        int compared = 0;
        foreach (var (type, keySize, valueSize, flags) in Maps())
        {
            int max = type == MapType.RingBuf ? 4096 : 2;
            int fd = KernelBpf.CreateMap((uint)type, keySize, valueSize, max, flags);
            Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"kernel {type} flags 0x{flags:x}: {Errno.Name(fd)}");
            using var map = MapFactory.Create(type, keySize, valueSize, max, flags, "ops");
            bool fdValues = type is MapType.ProgArray or MapType.PerfEventArray or MapType.CgroupArray or MapType.SockMap or MapType.SockHash;
            try
            {
                foreach (var step in Steps(fdValues))
                {
                    int kernel = RunKernel(fd, type, keySize, map.UserValueSize, step);
                    int ours = RunBpfJit(map, step);
                    compared++;
                    // Which key comes next in a hash, and which element an LRU map evicted, are the implementation's
                    // own (the kernel's differ between CPUs too): there only "found" against "not found" is compared.
                    bool orderDependent = (type is MapType.Hash or MapType.PerCpuHash or MapType.LruHash or MapType.LruPerCpuHash && step.Op == Op.NextKey)
                        || (type is MapType.LruHash or MapType.LruPerCpuHash && step.Op is Op.Lookup or Op.Delete or Op.NextKey or Op.LookupAndDelete);
                    if (orderDependent && kernel is 0 or -Errno.ENOENT && ours is 0 or -Errno.ENOENT) continue;
                    if (kernel != ours)
                        differences.Add($"{type} flags 0x{flags:x}: {step}: kernel {Errno.Name(kernel)}, BpfJit {Errno.Name(ours)}");
                }
            }
            finally { KernelBpf.Close(fd); }
        }
        TestContext.Out.WriteLine($"{compared} operations compared with the kernel");
        if (differences.Count > 0)
            KernelOracle.Differs(KernelOracle.RecordedRelease, $"{differences.Count} of {compared} operations:\n" + string.Join("\n", differences));
    }

    static int RunKernel(int fd, MapType type, int keySize, int userValueSize, Step s)
    {
        var key = Key(type, keySize, s.Key);
        var value = new byte[Math.Max(userValueSize, 8) * 64];
        var next = new byte[Math.Max(keySize, 8)];
        return s.Op switch
        {
            Op.Lookup => KernelBpf.Lookup(fd, key, value, s.Flags),
            Op.Update => KernelBpf.Update(fd, key, value, s.Flags),
            Op.Delete => KernelBpf.Delete(fd, key),
            Op.NextKey => KernelBpf.GetNextKey(fd, s.NoKey ? [] : key, next),
            Op.LookupAndDelete => KernelBpf.LookupAndDelete(fd, key, value, s.Flags),
            _ => KernelBpf.Freeze(fd),
        };
    }

    static int RunBpfJit(BpfMap map, Step s)
    {
        var key = Key(map.Type, map.KeySize, s.Key);
        var value = new byte[map.UserValueSize];
        var next = new byte[map.KeySize];
        return s.Op switch
        {
            Op.Lookup => map.Lookup(key, value, s.Flags),
            Op.Update => map.Update(key, value, s.Flags),
            Op.Delete => map.Delete(key),
            Op.NextKey => map.GetNextKey(s.NoKey ? [] : key, next),
            Op.LookupAndDelete => map.LookupAndDelete(key, value, s.Flags),
            _ => map.Freeze(),
        };
    }

    [TestCase(MapType.SockMap)]
    [TestCase(MapType.SockHash)]
    public void Socket_values_an_unbound_UDP_socket_and_an_fd_above_S32_MAX_get_the_kernels_errno(MapType type)
    {
        KernelBpf.RequireAvailable();
        int fd = KernelBpf.CreateMap((uint)type, 4, 8, 2, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0));
        using var udp = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        var key = BitConverter.GetBytes(0u);
        int kernelUnbound, kernelAbove;
        try
        {
            kernelUnbound = KernelBpf.Update(fd, key, BitConverter.GetBytes((ulong)udp.Handle));
            kernelAbove = KernelBpf.Update(fd, key, BitConverter.GetBytes(1UL << 31));
        }
        finally { KernelBpf.Close(fd); }

        var ns = new NetNamespace();
        var unbound = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        using var map = MapFactory.Create(type, 4, 8, 2, 0, "socks");
        int oursUnbound = map.Update(key, BitConverter.GetBytes(unbound.Cookie));
        int oursAbove = map.Update(key, BitConverter.GetBytes(1UL << 31));
        if (!KernelOracle.Agrees(kernelUnbound == -Errno.EOPNOTSUPP && kernelAbove == -Errno.EINVAL,
                () => $"unbound UDP {Errno.Name(kernelUnbound)}, fd 2^31 {Errno.Name(kernelAbove)} (recorded EOPNOTSUPP, EINVAL)"))
            return;
        Assert.Multiple(() =>
        {
            Assert.That(oursUnbound, Is.EqualTo(kernelUnbound), "an unbound UDP socket");
            Assert.That(oursAbove, Is.EqualTo(kernelAbove), "an fd above S32_MAX");
        });
    }
}
