using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// SO_INCOMING_CPU (<see cref="Sock.IncomingCpu"/>) and the packet's CPU (<see cref="Packet.Cpu"/>), by the rules of
/// Linux 6.18's <c>reuseport_select_sock_by_hash</c>, <c>reuseport_update_incoming_cpu</c> and
/// <c>reuseport_migrate_sock</c> (read from net/core/sock_reuseport.c; <see cref="ReuseportIncomingCpuOracleTests"/> and
/// <see cref="ReuseportFinalAckOracleTests"/> compare the selections with the live kernel).
/// </summary>
[TestFixture]
public class IncomingCpuTests
{
    static readonly InetEndPoint Local = new(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), 9400);

    static Sock[] Members(NetNamespace ns, SocketProtocol protocol, int count) => ReuseportMembers.Create(ns, protocol, Local, count);

    static Packet From(ushort port, SocketProtocol protocol = SocketProtocol.Udp, int? cpu = null, uint? hash = null) =>
        new(protocol, Local with { Port = port }, Local) { Cpu = cpu, FlowHash = hash };

    [Test]
    public void TheOptionReadsMinusOneUntilSetAndTakesAnyValue()
    {
        using var ns = new NetNamespace();
        var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        Assert.That(s.IncomingCpu, Is.EqualTo(-1));
        s.IncomingCpu = 3;
        Assert.That(s.IncomingCpu, Is.EqualTo(3));
        s.IncomingCpu = -7;     // reuseport_update_incoming_cpu does not check the value
        Assert.That(s.IncomingCpu, Is.EqualTo(-7));
        s.Close();
        Assert.Throws<ObjectDisposedException>(() => s.IncomingCpu = 0);
    }

    [TestCase(SocketProtocol.Udp)]
    [TestCase(SocketProtocol.Tcp)]
    public void TheHashPrefersAMemberOnThePacketsCpu(SocketProtocol protocol)
    {
        using var ns = new NetNamespace();
        var m = Members(ns, protocol, 3);
        m[1].IncomingCpu = 1;
        for (ushort port = 40000; port < 40032; port++)
        {
            Assert.That(ns.Lookup(From(port, protocol, cpu: 1)).Socket, Is.SameAs(m[1]), "on CPU 1: the member that set CPU 1");
            // No member on CPU 0: the hash's own pick, as with no CPU known.
            Assert.That(ns.Lookup(From(port, protocol, cpu: 0)).Socket, Is.SameAs(ns.Lookup(From(port, protocol)).Socket));
        }
    }

    [Test]
    public void OfSeveralMembersOnTheCpuTheHashWalkMeetsTheFirst()
    {
        using var ns = new NetNamespace();
        var m = Members(ns, SocketProtocol.Udp, 4);
        m[0].IncomingCpu = 2;
        m[2].IncomingCpu = 2;
        var group = m[0].ReuseportGroup!;
        // reciprocal_scale(hash, 4): 0x00.. starts at slot 0, 0x50.. at slot 1, 0xa0.. at 2, 0xf0.. at 3; the walk wraps.
        Assert.That(ns.Lookup(From(40000, cpu: 2, hash: 0x0000_0010)).Socket, Is.SameAs(m[0]));
        Assert.That(ns.Lookup(From(40000, cpu: 2, hash: 0x5000_0000)).Socket, Is.SameAs(m[2]));
        Assert.That(ns.Lookup(From(40000, cpu: 2, hash: 0xa000_0000)).Socket, Is.SameAs(m[2]));
        Assert.That(ns.Lookup(From(40000, cpu: 2, hash: 0xf000_0000)).Socket, Is.SameAs(m[0]));
        Assert.That(group.SelectByHash(0x5000_0000, From(40000, cpu: 2)), Is.SameAs(m[2]));
        // Unknown CPU: the slot the hash points at.
        Assert.That(group.SelectByHash(0x5000_0000, From(40000)), Is.SameAs(m[1]));
    }

    [Test]
    public void AConnectedMemberOnTheCpuIsNotChosen()
    {
        using var ns = new NetNamespace();
        var m = Members(ns, SocketProtocol.Udp, 3);
        m[2].IncomingCpu = 1;
        m[2].Connect(Local with { Port = 50000 });
        var packet = From(40000, cpu: 1, hash: 0x10);
        Assert.That(ns.Lookup(packet).Socket, Is.Not.SameAs(m[2]));
    }

    [Test]
    public void ARequestMigratesToTheListenerOnTheAcksCpu()
    {
        using var ns = new NetNamespace();
        ns.Sockets.TcpMigrateReq = true;
        var m = Members(ns, SocketProtocol.Tcp, 3);
        m[1].IncomingCpu = 5;
        m[0].Close();
        foreach (uint hash in new uint[] { 0x10, 0xf000_0000 })
        {
            var ack = new Packet(SocketProtocol.Tcp, Local with { Port = 40000 }, Local) { FlowHash = hash, Cpu = 5 };
            Assert.That(m[0].MigrateRequest(ack), Is.SameAs(m[1]), $"hash 0x{hash:x}");
        }
        // On another CPU the hash decides: the group's listeners are [2, 1] after the close.
        var other = new Packet(SocketProtocol.Tcp, Local with { Port = 40000 }, Local) { FlowHash = 0x10, Cpu = 4 };
        Assert.That(m[0].MigrateRequest(other), Is.SameAs(m[2]));
    }
}
