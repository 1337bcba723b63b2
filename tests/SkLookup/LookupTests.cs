using Errno = BpfJit.Runtime.Errno;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>The transport-layer order of spec 5.3-5.5: connected sockets, hook, reuseport, exact then wildcard listeners.</summary>
[TestFixture]
public class LookupTests
{
    static LookupResult Look(NetNamespace ns, string proto, string from, string to, int ifindex = 1) => ns.Lookup(Pkt(proto, from, to, ifindex));

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ConnectedSocketsBypassThePrograms(string engine)
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var ns = new NetNamespace();
        var listener = Tcp(ns, "127.0.0.1:7007");
        var established = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        established.Bind(Ep("127.0.0.1:7008"));
        established.Connect(Ep("127.0.0.2:5000"));
        var udp = Udp(ns, "127.0.0.1:9000", peer: "127.0.0.2:5000");
        var drop = Load(engine, "mov %r0, 0\nexit");
        ns.SkLookup.Attach(drop);
        var r = Look(ns, "tcp", "127.0.0.2:5000", "127.0.0.1:7008");
        Assert.That((r.Socket, r.ProgramsRan), Is.EqualTo((established, false)));
        r = Look(ns, "udp", "127.0.0.2:5000", "127.0.0.1:9000");
        Assert.That((r.Socket, r.ProgramsRan), Is.EqualTo((udp, false)));
        Assert.That(drop.RunCount, Is.Zero, "the program ran 0 times");
        // A different peer is not the connection: the program runs and drops.
        Assert.That(Look(ns, "udp", "127.0.0.3:5000", "127.0.0.1:9000").Outcome, Is.EqualTo(LookupOutcome.Refused));
        Assert.That(Look(ns, "tcp", "127.0.0.2:5000", "127.0.0.1:7007").Outcome, Is.EqualTo(LookupOutcome.Refused));
        Assert.That(listener.IsClosed, Is.False);
    }

    [TestCase("tcp")]
    [TestCase("udp")]
    public void ExactBeforeWildcard(string proto)
    {
        var ns = new NetNamespace();
        Sock Make(string bind) => proto == "tcp" ? Tcp(ns, bind, reuseport: true) : Udp(ns, bind, reuseport: true);
        var wild = Make("0.0.0.0:80");
        var exact = Make("127.0.0.1:80");
        Assert.That(Look(ns, proto, "10.0.0.1:1", "127.0.0.1:80").Socket, Is.SameAs(exact));
        Assert.That(Look(ns, proto, "10.0.0.1:1", "127.0.0.2:80").Socket, Is.SameAs(wild));
        Assert.That(Look(ns, proto, "10.0.0.1:1", "127.0.0.1:81").Outcome, Is.EqualTo(LookupOutcome.None));
        Assert.That(Look(ns, proto == "tcp" ? "udp" : "tcp", "10.0.0.1:1", "127.0.0.1:80").Outcome, Is.EqualTo(LookupOutcome.None));
    }

    [Test]
    public void DualStackAndV6Only()
    {
        var ns = new NetNamespace();
        var dual = Tcp(ns, "[::]:80", v6only: false);
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:80").Socket, Is.SameAs(dual), "IPv4 reaches a dual-stack socket");
        Assert.That(Look(ns, "tcp", "[fd00::9]:1", "[fd00::1]:80").Socket, Is.SameAs(dual));
        var ns2 = new NetNamespace();
        var v6 = Tcp(ns2, "[::]:80", v6only: true);
        var v4 = Tcp(ns2, "0.0.0.0:80");
        Assert.That(Look(ns2, "tcp", "10.0.0.1:1", "127.0.0.1:80").Socket, Is.SameAs(v4));
        Assert.That(Look(ns2, "tcp", "[fd00::9]:1", "[fd00::1]:80").Socket, Is.SameAs(v6));
        var mapped = Tcp(ns2, "[::ffff:127.0.0.5]:81", v6only: false);
        Assert.That(Look(ns2, "tcp", "10.0.0.1:1", "127.0.0.5:81").Socket, Is.SameAs(mapped), "a v4-mapped bind serves IPv4");
        Assert.Throws<SocketErrorException>(() => Tcp(ns2, "[::]:80", v6only: false), "dual-stack :: overlaps 0.0.0.0");
    }

    [Test]
    public void BoundDevice()
    {
        var ns = new NetNamespace();
        var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        s.BoundDevice = 2;
        s.Bind(Ep("0.0.0.0:53"));
        Assert.That(Look(ns, "udp", "10.0.0.1:1", "10.0.0.2:53", ifindex: 2).Socket, Is.SameAs(s));
        Assert.That(Look(ns, "udp", "10.0.0.1:1", "10.0.0.2:53", ifindex: 1).Outcome, Is.EqualTo(LookupOutcome.None));
    }

    [Test]
    public void ReuseportHashSpreadsAndSkipsConnected()
    {
        var ns = new NetNamespace();
        var members = Enumerable.Range(0, 4).Select(_ => Udp(ns, "127.0.0.1:5353", reuseport: true)).ToArray();
        var connected = Udp(ns, "127.0.0.1:5353", reuseport: true, peer: "127.0.0.1:5353");
        var hits = new Dictionary<Sock, int>();
        for (int port = 1000; port < 3000; port++)
        {
            var r = Look(ns, "udp", $"10.0.0.1:{port}", "127.0.0.1:5353");
            Assert.That(Look(ns, "udp", $"10.0.0.1:{port}", "127.0.0.1:5353").Socket, Is.SameAs(r.Socket), "the same tuple picks the same member");
            hits[r.Socket!] = hits.GetValueOrDefault(r.Socket!) + 1;
        }
        Assert.That(hits.Keys, Is.EquivalentTo(members), "every unconnected member gets traffic; the connected one none");
        Assert.That(hits.Values.Min(), Is.GreaterThan(300));
        // Linux 6.18 hashes a connected UDP socket by its 4-tuple and takes it out of its group (udp_lib_hash4).
        Assert.That(connected.ReuseportGroup, Is.Null);
        Assert.That(members[0].ReuseportGroup!.Members, Is.EqualTo(members));
        Assert.That(members[0].ReuseportGroup!.HasConns, Is.True);
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void SelectionOverridesExactListenerAndReuseportApplies(string engine)
    {
        var ns = new NetNamespace();
        var exact = Tcp(ns, "127.0.0.1:7007");
        var a = Tcp(ns, "127.0.0.2:8008", reuseport: true);
        var b = Tcp(ns, "127.0.0.2:8008", reuseport: true);
        a.ReuseportGroup!.Selector = (ReuseportGroup _, in Packet _) => ReuseportDecision.Choose(b);
        string assign(int flags) => $"lddw %r2, {Hex(a.Handle)}\nmov %r3, {flags}\ncall 124\nmov %r0, 1\nexit";
        var link = ns.SkLookup.Attach(Load(engine, assign(0)));
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:7007").Socket, Is.SameAs(b), "reuseport picks within the group");
        link.Update(Load(engine, assign(2)));
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:7007").Socket, Is.SameAs(a), "F_NO_REUSEPORT skips it");
        a.ReuseportGroup.Selector = (ReuseportGroup _, in Packet _) => ReuseportDecision.Drop;
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:7007").Socket, Is.SameAs(a));
        link.Update(Load(engine, assign(0)));
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:7007").Outcome, Is.EqualTo(LookupOutcome.Refused), "a reuseport drop refuses");
        link.Detach();
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:7007").Socket, Is.SameAs(exact));
    }

    [Test]
    public void ClosedSocketsAreNeverHandedOut()
    {
        var ns = new NetNamespace();
        var s = Tcp(ns, "127.0.0.1:80");
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:80").Socket, Is.SameAs(s));
        s.Close();
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:80").Outcome, Is.EqualTo(LookupOutcome.None));
        Assert.That(Sock.FromCookie(s.Cookie), Is.Null);
        var again = Tcp(ns, "127.0.0.1:80");
        Assert.That(Look(ns, "tcp", "10.0.0.1:1", "127.0.0.1:80").Socket, Is.SameAs(again), "the address is free after close");
        Assert.That(again.Cookie, Is.Not.EqualTo(s.Cookie));
    }

    [Test]
    public void RawAddressOverloadAndDispose()
    {
        var ns = new NetNamespace();
        var v4 = Tcp(ns, "127.0.0.1:80");
        var v6 = Tcp(ns, "[fd00::1]:80");
        var r = ns.Lookup(SocketProtocol.Tcp, SocketFamily.Inet, [10, 0, 0, 1], 5000, [127, 0, 0, 1], 80);
        Assert.That(r.Socket, Is.SameAs(v4));
        byte[] fd01 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], fd09 = [.. fd01[..15], 9];
        Assert.That(ns.Lookup(SocketProtocol.Tcp, SocketFamily.Inet6, fd09, 5000, fd01, 80).Socket, Is.SameAs(v6));
        Assert.Throws<ArgumentException>(() => ns.Lookup(SocketProtocol.Tcp, SocketFamily.Inet6, [1, 2, 3, 4], 1, fd01, 80));
        var unbound = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        Assert.That(ns.Sockets.Sockets, Is.EqualTo(new[] { v4, v6, unbound }));
        ns.SkLookup.Attach(Load("interpreter", "mov %r0, 0\nexit"));
        ns.Dispose();
        Assert.That((v4.IsClosed, v6.IsClosed, unbound.IsClosed, ns.SkLookup.Links.Count), Is.EqualTo((true, true, true, 0)));
        Assert.That(ns.Sockets.Sockets, Is.Empty);
    }

    [Test]
    public void EphemeralPortsAndConflicts()
    {
        var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:0");
        var b = Tcp(ns, "127.0.0.1:0");
        Assert.That(a.Local!.Value.Port, Is.Not.Zero.And.Not.EqualTo(b.Local!.Value.Port));
        var e = Assert.Throws<SocketErrorException>(() => Tcp(ns, $"0.0.0.0:{a.Local!.Value.Port}"));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EADDRINUSE));
        Assert.DoesNotThrow(() => Udp(ns, $"127.0.0.1:{a.Local!.Value.Port}"), "UDP and TCP ports are separate");
    }

    [Test]
    public void OnlyTcpAndUdpSocketsExistAndOtherProtocolsFindNothing()
    {
        using var ns = new NetNamespace();
        var e = Assert.Throws<SocketErrorException>(() => ns.Sockets.Create(SocketFamily.Inet, (SocketProtocol)132));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EPROTONOSUPPORT));
        Assert.That(e.Message, Does.Contain("protocol 132").And.Contain("EPROTONOSUPPORT"));
        Tcp(ns, "127.0.0.1:7007");
        var r = ns.Lookup(new Packet((SocketProtocol)132, Ep("127.0.0.9:1000"), Ep("127.0.0.1:7007")));
        Assert.That(r.Outcome, Is.EqualTo(LookupOutcome.None), "an SCTP packet finds neither the TCP listener nor a crash");
    }
}
