using System.Buffers.Binary;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkLookup;

/// <summary>SOCKMAP and SOCKHASH (spec 7, 3.3): creation checks, the userspace API, program lookups and close.</summary>
[TestFixture]
public class SockMapTests
{
    static byte[] U32(uint v) => BitConverter.GetBytes(v);

    static byte[] Fd(Sock s, int size) => size == 8 ? BitConverter.GetBytes(s.Cookie) : BitConverter.GetBytes((uint)s.Cookie);

    [TestCase(MapType.SockMap, 4, 8, 4, 0u, 0)]
    [TestCase(MapType.SockMap, 4, 4, 4, 0u, 0)]
    [TestCase(MapType.SockMap, 8, 8, 4, 0u, Errno.EINVAL)]
    [TestCase(MapType.SockMap, 4, 16, 4, 0u, Errno.EINVAL)]
    [TestCase(MapType.SockMap, 4, 8, 0, 0u, Errno.EINVAL)]
    [TestCase(MapType.SockMap, 4, 8, 4, 1u, Errno.EINVAL)]
    [TestCase(MapType.SockHash, 12, 8, 4, 0u, 0)]
    [TestCase(MapType.SockHash, 0, 8, 4, 0u, Errno.EINVAL)]
    [TestCase(MapType.SockHash, 513, 8, 4, 0u, Errno.E2BIG)]
    [TestCase(MapType.SockHash, 4, 2, 4, 0u, Errno.EINVAL)]
    public void Create(MapType type, int key, int value, int max, uint flags, int errno)
    {
        if (errno == 0)
        {
            using var m = MapFactory.Create(type, key, value, max, flags, "m");
            Assert.That(m, Is.InstanceOf<SocketMapBase>());
            return;
        }
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Create(type, key, value, max, flags, "m"));
        Assert.That(e!.Errno, Is.EqualTo(errno));
    }

    [Test]
    public void SockMapUserspaceApi()
    {
        var ns = new NetNamespace();
        var listener = Tcp(ns, "127.0.0.1:80");
        var bound = Tcp(ns, "127.0.0.1:81", listen: false);
        var unbound = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        var udp = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        using var map = MapFactory.Create(MapType.SockMap, 4, 8, 4, 0, "redir_map");
        var value = new byte[8];
        Assert.That(map.Lookup(U32(0), value), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Update(U32(0), Fd(listener, 8)), Is.Zero);
        Assert.That(map.Lookup(U32(0), value), Is.Zero);
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(value), Is.EqualTo(listener.Cookie), "lookup returns the cookie");
        Assert.That(map.Update(U32(1), Fd(bound, 8)), Is.EqualTo(-Errno.EOPNOTSUPP), "TCP must listen or be established");
        Assert.That(map.Update(U32(1), Fd(unbound, 8)), Is.EqualTo(-Errno.EOPNOTSUPP));
        // sock_map_sk_state_allowed: a UDP socket must be hashed (bound); Linux 6.18 answers EOPNOTSUPP for an
        // unbound one (raw bpf() with a fresh SOCK_DGRAM socket).
        Assert.That(map.Update(U32(1), Fd(udp, 8)), Is.EqualTo(-Errno.EOPNOTSUPP), "an unbound UDP socket");
        udp.Bind(Ep("127.0.0.1:5353"));
        Assert.That(map.Update(U32(1), Fd(udp, 8)), Is.Zero, "a bound UDP socket");
        Assert.That(map.Update(U32(4), Fd(udp, 8)), Is.EqualTo(-Errno.E2BIG));
        Assert.That(map.Update(U32(0), Fd(udp, 8), UpdateFlags.NoExist), Is.EqualTo(-Errno.EEXIST));
        Assert.That(map.Update(U32(2), Fd(udp, 8), UpdateFlags.Exist), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Update(U32(2), Fd(udp, 8), 3), Is.EqualTo(-Errno.EINVAL));
        Assert.That(map.Update(U32(2), BitConverter.GetBytes(1UL << 40)), Is.EqualTo(-Errno.EINVAL));
        Assert.That(map.Update(U32(2), BitConverter.GetBytes(1UL << 31)), Is.EqualTo(-Errno.EINVAL), "an fd above S32_MAX");
        Assert.That(map.Update(U32(2), BitConverter.GetBytes(0UL)), Is.EqualTo(-Errno.EBADF));
        Assert.That(map.Delete(U32(3)), Is.EqualTo(-Errno.EINVAL), "deleting an empty slot");
        Assert.That(map.Delete(U32(9)), Is.EqualTo(-Errno.EINVAL));
        Assert.That(map.Keys().Select(k => BitConverter.ToUInt32(k)), Is.EqualTo(new uint[] { 0, 1, 2, 3 }));
        udp.Close();
        Assert.That(map.Lookup(U32(1), value), Is.EqualTo(-Errno.ENOENT), "a closed socket leaves the map");
        Assert.That(map.Delete(U32(0)), Is.Zero);
        Assert.That(map.Lookup(U32(0), value), Is.EqualTo(-Errno.ENOENT));

        using var small = MapFactory.Create(MapType.SockMap, 4, 4, 2, 0, "small");
        Assert.That(small.Update(U32(0), Fd(listener, 4)), Is.Zero);
        Assert.That(small.Lookup(U32(0), new byte[4]), Is.EqualTo(-Errno.ENOSPC), "value_size 4 cannot return a cookie");
    }

    [Test]
    public void SockHashUserspaceApi()
    {
        var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:80");
        var b = Tcp(ns, "127.0.0.1:81");
        using var map = (SockHash)MapFactory.Create(MapType.SockHash, 6, 8, 2, 0, "h");
        byte[] k1 = [1, 2, 3, 4, 5, 6], k2 = [9, 9, 9, 9, 9, 9], k3 = [7, 7, 7, 7, 7, 7];
        Assert.That(map.Update(k1, Fd(a, 8)), Is.Zero);
        Assert.That(map.Update(k2, b), Is.Zero);
        Assert.That(map.Update(k3, b), Is.EqualTo(-Errno.E2BIG), "full");
        Assert.That(map.Update(k1, b), Is.Zero, "replacing an existing key is fine when full");
        Assert.That(map.Get(k1), Is.SameAs(b));
        Assert.That(map.Delete(k3), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Keys().Count(), Is.EqualTo(2));
        b.Close();
        Assert.That(map.Keys(), Is.Empty, "both keys held b");
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ProgramLookupReferencesRefcountedSockets(string engine)
    {
        var ns = new NetNamespace();
        var listener = Tcp(ns, "127.0.0.1:80");
        var established = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        established.Bind(Ep("127.0.0.1:81"));
        established.Connect(Ep("127.0.0.2:9"));
        using var map = (SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 2, 0, "m");
        Assert.That(map.Update(0, listener), Is.Zero);
        Assert.That(map.Update(1, established), Is.Zero);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        string lookup(int key, bool release) => $"""
            stw [%r10-4], {key}
            lddw %r1, 0x{map.Handle:x}
            mov %r2, %r10
            add %r2, -4
            call 1
            mov %r6, %r0
            {(release ? "mov %r1, %r0\ncall 86" : "")}
            mov %r0, %r6
            exit
            """;
        Assert.That(RunRaw(engine, lookup(0, false), ctx), Is.EqualTo((ulong)listener.Handle));
        Assert.That(listener.ProgramReferences, Is.Zero, "RCU-freed sockets take no reference");
        Assert.That(RunRaw(engine, lookup(1, false), ctx), Is.EqualTo((ulong)established.Handle));
        Assert.That(established.ProgramReferences, Is.EqualTo(1));
        Assert.That(RunRaw(engine, lookup(1, true), ctx), Is.EqualTo((ulong)established.Handle));
        Assert.That(established.ProgramReferences, Is.EqualTo(1), "lookup + release leaves the count unchanged");
        Assert.That(RunRaw(engine, lookup(5, false), ctx), Is.Zero, "key past max_entries: NULL");
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ProgramUpdateAndDeleteWithCtxSk(string engine)
    {
        // verifier_sockmap_mutate: an sk_lookup program deletes key 0 and inserts ctx->sk.
        var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:80");
        var old = Tcp(ns, "127.0.0.1:81");
        using var map = (SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 2, 0, "m");
        using var hash = (SockHash)MapFactory.Create(MapType.SockHash, 4, 8, 2, 0, "h");
        Assert.That(map.Update(0, old), Is.Zero);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        ctx.SelectedSocket = a.Handle;
        string asm = $"""
            mov %r6, %r1
            stw [%r10-4], 0
            lddw %r1, 0x{map.Handle:x}
            mov %r2, %r10
            add %r2, -4
            call 3
            jne %r0, 0, fail
            ldxdw %r3, [%r6+0]
            jeq %r3, 0, fail
            stw [%r10-4], 1
            lddw %r1, 0x{map.Handle:x}
            mov %r2, %r10
            add %r2, -4
            mov %r4, 0
            call 2
            jne %r0, 0, fail
            ldxdw %r3, [%r6+0]
            lddw %r1, 0x{hash.Handle:x}
            mov %r2, %r10
            add %r2, -4
            mov %r4, 0
            call 2
            exit
            fail:
            mov %r0, 99
            exit
            """;
        Assert.That(RunRaw(engine, asm, ctx), Is.Zero);
        Assert.That((map.Get(0), map.Get(1), hash.Get(U32(1))), Is.EqualTo(((Sock?)null, a, a)));
    }
}
