using System.Buffers.Binary;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkReuseport;

/// <summary>BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: creation checks and the userspace rules of kernel/bpf/reuseport_array.c.</summary>
[TestFixture]
public class ReuseportSockArrayTests
{
    static byte[] U32(uint v) => BitConverter.GetBytes(v);

    static byte[] Fd(Sock s, int size) => size == 8 ? BitConverter.GetBytes(s.Cookie) : BitConverter.GetBytes((uint)s.Cookie);

    // reuseport_array_alloc_check (value 4 or 8) before array_map_alloc_check (key 4, max_entries, flags).
    [TestCase(4, 8, 4, 0u, 0)]
    [TestCase(4, 4, 4, 0u, 0)]
    [TestCase(4, 2, 4, 0u, Errno.EINVAL)]
    [TestCase(4, 16, 4, 0u, Errno.EINVAL)]
    [TestCase(8, 8, 4, 0u, Errno.EINVAL)]
    [TestCase(4, 8, 0, 0u, Errno.EINVAL)]
    [TestCase(4, 8, 4, MapFlags.Mmapable, Errno.EINVAL)]
    public void Create(int key, int value, int max, uint flags, int errno)
    {
        if (errno == 0)
        {
            using var m = MapFactory.Create(MapType.ReuseportSockArray, key, value, max, flags, "m");
            Assert.That(m, Is.InstanceOf<ReuseportSockArray>());
            return;
        }
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Create(MapType.ReuseportSockArray, key, value, max, flags, "m"));
        Assert.That(e!.Errno, Is.EqualTo(errno));
    }

    [TestCase(8)]
    [TestCase(4)]
    public void UpdateTakesOnlyHashedReuseportSockets(int valueSize)
    {
        using var ns = new NetNamespace();
        var listener = Tcp(ns, "127.0.0.1:80", reuseport: true);
        var boundTcp = Tcp(ns, "127.0.0.1:81", listen: false, reuseport: true);
        var plain = Tcp(ns, "127.0.0.1:82");
        var udp = Udp(ns, "127.0.0.1:53", reuseport: true);
        var udpConnected = Udp(ns, "127.0.0.1:54", reuseport: true, peer: "127.0.0.9:9");
        var unbound = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        unbound.ReusePort = true;
        using var map = MapFactory.Create(MapType.ReuseportSockArray, 4, valueSize, 8, 0, "rp");
        Assert.That(map.Update(U32(0), Fd(listener, valueSize)), Is.Zero, "a listener in a group");
        Assert.That(map.Update(U32(1), Fd(boundTcp, valueSize)), Is.EqualTo(-Errno.EINVAL), "a TCP socket only bound is not hashed");
        Assert.That(map.Update(U32(1), Fd(plain, valueSize)), Is.EqualTo(-Errno.EINVAL), "no SO_REUSEPORT: no group");
        Assert.That(map.Update(U32(1), Fd(unbound, valueSize)), Is.EqualTo(-Errno.EINVAL), "an unbound socket");
        Assert.That(map.Update(U32(1), Fd(udp, valueSize)), Is.Zero, "a bound UDP socket");
        Assert.That(map.Update(U32(2), Fd(udpConnected, valueSize)), Is.EqualTo(-Errno.EINVAL), "a connected UDP socket left its group (udp_lib_hash4)");
        Assert.That(map.Update(U32(3), Fd(udp, valueSize)), Is.EqualTo(-Errno.EBUSY), "a socket is in one slot at a time");
        Assert.That(map.Update(U32(1), Fd(udp, valueSize)), Is.EqualTo(-Errno.EBUSY), "its own slot too (sk_user_data is set)");
        Assert.That(map.Update(U32(8), Fd(udp, valueSize)), Is.EqualTo(-Errno.E2BIG));
        Assert.That(map.Update(U32(3), Fd(listener, valueSize), 3), Is.EqualTo(-Errno.EINVAL), "flags above BPF_EXIST");
        Assert.That(map.Update(U32(0), BitConverter.GetBytes(999_999_999UL)[..valueSize]), Is.EqualTo(-Errno.EBADF), "no such socket");
        if (valueSize == 8)
            Assert.That(map.Update(U32(0), BitConverter.GetBytes((ulong)int.MaxValue + 1)), Is.EqualTo(-Errno.EINVAL), "an fd above S32_MAX");
    }

    [Test]
    public void FlagsAndReplace()
    {
        using var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:80", reuseport: true);
        var b = Tcp(ns, "127.0.0.1:80", reuseport: true);
        using var map = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 2, 0, "rp");
        using var other = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 2, 0, "rp2");
        Assert.That(map.Update(U32(0), Fd(a, 8), UpdateFlags.Exist), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Update(U32(0), Fd(a, 8), UpdateFlags.NoExist), Is.Zero);
        Assert.That(map.Update(U32(0), Fd(b, 8), UpdateFlags.NoExist), Is.EqualTo(-Errno.EEXIST));
        Assert.That(other.Update(U32(0), Fd(a, 8)), Is.EqualTo(-Errno.EBUSY), "held by another REUSEPORT_SOCKARRAY");
        Assert.That(map.Update(U32(0), Fd(b, 8), UpdateFlags.Exist), Is.Zero, "replaces a");
        Assert.That(other.Update(U32(0), Fd(a, 8)), Is.Zero, "the replaced socket is free again");
        var value = new byte[8];
        Assert.That(map.Lookup(U32(0), value), Is.Zero);
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(value), Is.EqualTo(b.Cookie), "lookup returns the cookie");
    }

    [Test]
    public void LookupDeleteAndClose()
    {
        using var ns = new NetNamespace();
        var a = Udp(ns, "127.0.0.1:53", reuseport: true);
        using var map = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 2, 0, "rp");
        using var small = MapFactory.Create(MapType.ReuseportSockArray, 4, 4, 2, 0, "rp4");
        var value = new byte[8];
        Assert.That(map.Lookup(U32(1), value), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Lookup(U32(7), value), Is.EqualTo(-Errno.ENOENT), "out of range reads as empty");
        Assert.That(small.Lookup(U32(0), new byte[4]), Is.EqualTo(-Errno.ENOSPC), "value_size 4 cannot hold a cookie");
        Assert.That(map.Delete(U32(2)), Is.EqualTo(-Errno.E2BIG));
        Assert.That(map.Delete(U32(0)), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Update(U32(0), Fd(a, 8)), Is.Zero);
        Assert.That(map.Delete(U32(0)), Is.Zero);
        Assert.That(small.Update(U32(0), Fd(a, 4)), Is.Zero, "a deleted socket is free again");
        Assert.That(map.Update(U32(1), Fd(a, 8)), Is.EqualTo(-Errno.EBUSY));
        a.Close();
        Assert.That(((ReuseportSockArray)small).Get(0), Is.Null, "a closed socket leaves the map");
        Assert.That(small.Lookup(U32(0), new byte[4]), Is.EqualTo(-Errno.ENOSPC));
        var next = new byte[4];
        Assert.That(map.GetNextKey([], next), Is.Zero);
        Assert.That(BitConverter.ToUInt32(next), Is.Zero);
        Assert.That(map.GetNextKey(U32(1), next), Is.EqualTo(-Errno.ENOENT));
    }

    [Test]
    public void DisposedMapReleasesItsSockets()
    {
        using var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:80", reuseport: true);
        var map = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 2, 0, "rp");
        Assert.That(map.Update(U32(0), Fd(a, 8)), Is.Zero);
        map.Dispose();
        MapEpoch.Collect();     // the map's memory (and its hold on the sockets) goes once no reader can see it
        using var other = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 2, 0, "rp2");
        Assert.That(other.Update(U32(0), Fd(a, 8)), Is.Zero, "reuseport_array_free clears sk_user_data");
    }
}
