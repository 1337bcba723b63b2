using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Audit (helper aud): userspace operations on the two map types <see cref="MapOperationKernelTests"/> does not run,
/// REUSEPORT_SOCKARRAY (value 4 and 8) and USER_RINGBUF, with values that name no socket (no descriptor is needed):
/// the same step on a kernel map and a BpfJit map must give the same errno. (A value of 0 is left out: in the kernel it
/// is fd 0, the test host's stdin, ENOTSOCK; in BpfJit cookie 0, EBADF.)
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class AuditOpGapTests
{
    [OneTimeSetUp]
    public void Setup() => SocketMapBase.Register();

    enum Op { Lookup, Update, Delete, NextKey, Freeze, LookupAndDelete }

    static readonly (Op Op, uint Key, ulong Value, ulong Flags, bool NoKey)[] s_steps =
    [
        (Op.Lookup, 0, 0, 0, false), (Op.Lookup, 7, 0, 0, false), (Op.Lookup, 0, 0, 4, false), (Op.Lookup, 0, 0, 1, false),
        (Op.Update, 0, 1UL << 31, 0, false), (Op.Update, 0, 999_999, 0, false), (Op.Update, 0, 999_999, 1, false),
        (Op.Update, 0, 999_999, 2, false), (Op.Update, 0, 999_999, 3, false), (Op.Update, 0, 999_999, 4, false),
        (Op.Update, 7, 999_999, 0, false),
        (Op.Delete, 0, 0, 0, false), (Op.Delete, 7, 0, 0, false),
        (Op.NextKey, 0, 0, 0, true), (Op.NextKey, 0, 0, 0, false), (Op.NextKey, 3, 0, 0, false), (Op.NextKey, 7, 0, 0, false),
        (Op.LookupAndDelete, 0, 0, 0, false),
        (Op.Freeze, 0, 0, 0, false), (Op.Freeze, 0, 0, 0, false),
        (Op.Update, 0, 999_999, 0, false), (Op.Delete, 0, 0, 0, false), (Op.Lookup, 0, 0, 0, false),
    ];

    [TestCase(MapType.ReuseportSockArray, 4, 8, 4)]
    [TestCase(MapType.ReuseportSockArray, 4, 4, 4)]
    [TestCase(MapType.UserRingBuf, 0, 0, 4096)]
    public void Same_errno_as_the_kernel(MapType type, int keySize, int valueSize, int max)
    {
        KernelBpf.RequireAvailable();
        int fd = KernelBpf.CreateMap((uint)type, keySize, valueSize, max, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), Errno.Name(fd));
        using var map = MapFactory.Create(type, keySize, valueSize, max, 0, "ops");
        var differences = new List<string>();
        try
        {
            foreach (var s in s_steps)
            {
                var key = new byte[Math.Max(keySize, 0)];
                if (keySize >= 4) BitConverter.TryWriteBytes(key, s.Key);
                var kv = new byte[Math.Max(valueSize, 8)];
                BitConverter.TryWriteBytes(kv, s.Value);
                var ov = new byte[Math.Max(map.UserValueSize, 8)];
                BitConverter.TryWriteBytes(ov, s.Value);
                var next = new byte[Math.Max(keySize, 8)];
                int kernel = s.Op switch
                {
                    Op.Lookup => KernelBpf.Lookup(fd, key, kv, s.Flags),
                    Op.Update => KernelBpf.Update(fd, key, kv.AsSpan(0, Math.Max(valueSize, 1)), s.Flags),
                    Op.Delete => KernelBpf.Delete(fd, key),
                    Op.NextKey => KernelBpf.GetNextKey(fd, s.NoKey ? [] : key, next),
                    Op.LookupAndDelete => KernelBpf.LookupAndDelete(fd, key, kv, s.Flags),
                    _ => KernelBpf.Freeze(fd),
                };
                int ours = s.Op switch
                {
                    Op.Lookup => map.Lookup(key, ov.AsSpan(0, map.UserValueSize), s.Flags),
                    Op.Update => map.Update(key, ov.AsSpan(0, map.UserValueSize), s.Flags),
                    Op.Delete => map.Delete(key),
                    Op.NextKey => map.GetNextKey(s.NoKey ? [] : key, next.AsSpan(0, map.KeySize)),
                    Op.LookupAndDelete => map.LookupAndDelete(key, ov.AsSpan(0, map.UserValueSize), s.Flags),
                    _ => map.Freeze(),
                };
                if (kernel != ours) differences.Add($"{s.Op} key {s.Key} value {s.Value} flags {s.Flags}{(s.NoKey ? " first" : "")}: kernel {Errno.Name(kernel)}, BpfJit {Errno.Name(ours)}");
            }
        }
        finally { KernelBpf.Close(fd); }
        TestContext.Out.WriteLine($"{type} value {valueSize}: {differences.Count} differ\n" + string.Join("\n", differences));
        Assert.That(differences, Is.Empty);
    }
}
