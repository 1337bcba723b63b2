using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Issue 17, item 5: sockets share a reuseport group only when Linux's inet_reuseport_add_sock /
/// udp_reuseport_add_sock would put them together: same family, same IPV6_V6ONLY, same bound device.
/// </summary>
[TestFixture]
public class ReuseportMatchTests
{
    static IEnumerable<Packet> Packets(string proto, string to, int ifindex = 1) =>
        Enumerable.Range(1000, 400).Select(port => Pkt(proto, $"10.0.0.9:{port}", to, ifindex));

    [TestCase("tcp")]
    [TestCase("udp")]
    public void AV6OnlySocketIsNotInTheGroupOfADualStackOne(string proto)
    {
        using var ns = new NetNamespace();
        var dual = proto == "tcp" ? Tcp(ns, "[::]:7400", reuseport: true, v6only: false) : Udp(ns, "[::]:7400", reuseport: true, v6only: false);
        var only6 = proto == "tcp" ? Tcp(ns, "[::]:7400", reuseport: true, v6only: true) : Udp(ns, "[::]:7400", reuseport: true, v6only: true);
        Assert.That(dual.ReuseportGroup, Is.Not.SameAs(only6.ReuseportGroup));
        foreach (var p in Packets(proto, "127.0.0.1:7400"))
            Assert.That(ns.Lookup(p).Socket, Is.SameAs(dual), $"{p}: an IPv4 packet reaches only the dual-stack socket");
    }

    [TestCase("tcp")]
    [TestCase("udp")]
    public void SocketsBoundToOtherDevicesAreNotInOneGroup(string proto)
    {
        using var ns = new NetNamespace();
        Sock Make(int dev)
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, proto == "tcp" ? SocketProtocol.Tcp : SocketProtocol.Udp);
            s.ReusePort = true;
            s.BoundDevice = dev;
            s.Bind(Ep("127.0.0.1:7401"));
            if (proto == "tcp") s.Listen();
            return s;
        }
        var on1 = Make(1);
        var on2 = Make(2);
        Assert.That(on1.ReuseportGroup, Is.Not.SameAs(on2.ReuseportGroup));
        foreach (var p in Packets(proto, "127.0.0.1:7401", ifindex: 1))
            Assert.That(ns.Lookup(p).Socket, Is.SameAs(on1), $"{p} from if 1");
        foreach (var p in Packets(proto, "127.0.0.1:7401", ifindex: 2))
            Assert.That(ns.Lookup(p).Socket, Is.SameAs(on2), $"{p} from if 2");
    }

    [Test]
    public void AMemberBoundToAnotherDeviceAfterJoiningGetsNoPacketsFromThisOne()
    {
        using var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:7402", reuseport: true);
        var b = Tcp(ns, "127.0.0.1:7402", reuseport: true);
        Assert.That(a.ReuseportGroup, Is.SameAs(b.ReuseportGroup));
        b.BoundDevice = 2;      // SO_BINDTODEVICE after bind: the socket stays in its group
        foreach (var p in Packets("tcp", "127.0.0.1:7402", ifindex: 1))
            Assert.That(ns.Lookup(p).Socket, Is.SameAs(a), $"{p} from if 1");
    }

    [Test]
    public void BindsOnDifferentDevicesDoNotConflict()
    {
        // inet_bind_conflict: sockets bound to two different devices never conflict (either unbound does).
        using var ns = new NetNamespace();
        var a = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        a.BoundDevice = 1;
        a.Bind(Ep("127.0.0.1:7403"));
        var b = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        b.BoundDevice = 2;
        Assert.DoesNotThrow(() => b.Bind(Ep("127.0.0.1:7403")));
        var c = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        Assert.That(Assert.Throws<SocketErrorException>(() => c.Bind(Ep("127.0.0.1:7403")))!.Errno, Is.EqualTo(Errno.EADDRINUSE));
    }
}
