using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// <see cref="Sock.Shutdown"/> on TCP listeners, by Linux 6.18's <c>inet_shutdown</c>, <c>tcp_disconnect</c>,
/// <c>reuseport_stop_listen_sock</c> and <c>reuseport_resurrect</c> (net/ipv4/af_inet.c, tcp.c, core/sock_reuseport.c);
/// <see cref="ReuseportShutdownOracleTests"/> compares the observable sequences with the live kernel.
/// </summary>
[TestFixture]
public class ListenerShutdownTests
{
    static readonly InetEndPoint Local = new(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), 9600);

    static Sock Listener(NetNamespace ns, bool reuseport = true)
    {
        var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        s.ReusePort = reuseport;
        s.Bind(Local);
        s.Listen();
        return s;
    }

    static Packet Ack(uint hash) => new(SocketProtocol.Tcp, Local with { Port = 40000 }, Local) { FlowHash = hash };

    [Test]
    public void AShutDownListenerIsClosedButBoundAndListensAgain()
    {
        using var ns = new NetNamespace();
        var a = Listener(ns);
        var group = a.ReuseportGroup;
        Assert.That(a.Shutdown(ShutdownHow.Read), Is.Empty);
        Assert.Multiple(() =>
        {
            Assert.That(a.State, Is.EqualTo(SockState.Bound), "TCP_CLOSE, the port bind() named kept");
            Assert.That(a.Local, Is.EqualTo(Local));
            Assert.That(a.ReuseportGroup, Is.Null);
            Assert.That(ns.Lookup(Ack(1)).Outcome, Is.Not.EqualTo(LookupOutcome.Socket));
        });
        a.Listen();
        Assert.That(a.State, Is.EqualTo(SockState.Listening));
        Assert.That(a.ReuseportGroup, Is.Not.Null.And.Not.SameAs(group), "alone: a new group (reuseport_resurrect without a target)");
        Assert.That(ns.Lookup(Ack(1)).Socket, Is.SameAs(a));
    }

    [Test]
    public void AnAutoboundListenerGivesItsPortBack()
    {
        using var ns = new NetNamespace();
        var a = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        a.Listen();
        ushort port = a.Local!.Value.Port;
        a.Shutdown(ShutdownHow.ReadWrite);
        Assert.That(a.State, Is.EqualTo(SockState.Unbound));
        Assert.That(a.Local!.Value.Port, Is.Zero);
        var b = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        b.Bind(Local with { Port = port });     // free again
        a.Listen();
        Assert.That(a.State, Is.EqualTo(SockState.Listening));
        Assert.That(a.Local!.Value.Port, Is.Not.Zero.And.Not.EqualTo(port));
    }

    [Test]
    public void ShutWrOnAListenerAndErrors()
    {
        using var ns = new NetNamespace();
        var a = Listener(ns);
        a.Shutdown(ShutdownHow.Write);
        Assert.That(a.State, Is.EqualTo(SockState.Listening));
        Assert.That(Assert.Throws<SocketErrorException>(() => a.Shutdown((ShutdownHow)3))!.Errno, Is.EqualTo(Errno.EINVAL));
        a.Shutdown(ShutdownHow.Read);
        Assert.That(Assert.Throws<SocketErrorException>(() => a.Shutdown(ShutdownHow.Read))!.Errno, Is.EqualTo(Errno.ENOTCONN));
        a.Close();
        Assert.That(Assert.Throws<SocketErrorException>(() => a.Shutdown(ShutdownHow.Read))!.Errno, Is.EqualTo(Errno.EBADF));
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ARequestOfAShutDownListenerMigratesAtItsFinalAck(string engine)
    {
        using var ns = new NetNamespace();
        var a = Listener(ns);
        var b = Listener(ns);
        // ctx->sk->state (TCP_CLOSE, 7) + 1: the program sees the shut-down listener's live block.
        using (var p = SkReuseportProgram.Load("state", Assembler.Assemble("ldxdw %r1, [%r1+40]\nldxw %r0, [%r1+72]\njne %r0, 7, drop\nmov %r0, 1\nexit\ndrop:\nmov %r0, 0\nexit"),
            Engines.Get(engine), expectedAttachType: AttachType.SkReuseportSelectOrMigrate))
            a.ReuseportGroup!.Attach(p);
        a.Shutdown(ShutdownHow.Read);
        Assert.That(a.MigrateRequest(Ack(1)), Is.SameAs(b), "migration capable: the closed section, then the hash among [b]");
        a.Listen();
        Assert.That(a.ReuseportGroup, Is.SameAs(b.ReuseportGroup), "b still listens: a rejoins its group");
        Assert.That(a.MigrateRequest(Ack(1)), Is.SameAs(a), "listening again, it keeps its requests");
        a.Shutdown(ShutdownHow.Read);
        a.Close();
        Assert.That(a.MigrateRequest(Ack(1)), Is.SameAs(b), "closed after the shutdown: still in the closed section");
    }

    [Test]
    public void WithoutMigrationAShutDownListenerLeavesItsGroup()
    {
        using var ns = new NetNamespace();
        var a = Listener(ns);
        Listener(ns);
        a.Shutdown(ShutdownHow.Read);
        Assert.That(a.MigrateRequest(Ack(1)), Is.Null, "reuseport_detach_sock: nothing to migrate to");
    }
}
