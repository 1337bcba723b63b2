using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// Request migration at the handshake's final ACK (<see cref="Sock.MigrateRequest"/>): <c>tcp_v4_rcv</c> finds a
/// TCP_NEW_SYN_RECV request whose listener no longer listens and calls <c>reuseport_migrate_sock</c> with the ACK as the
/// packet. The rules pinned here are read from net/ipv4/tcp_ipv4.c and net/core/sock_reuseport.c (Linux 6.18);
/// <see cref="ReuseportFinalAckOracleTests"/> compares the outcomes with the live kernel's.
/// Three listeners on 127.0.0.1:9100, sockets[i] = listener i; listener 0 answered the SYN and closes.
/// </summary>
[TestFixture]
public class ReuseportFinalAckMigrationTests
{
    const ushort Port = 9100, ClientPort = 42000;
    const long SocketsMarker = 0x7ead0002, RecordMarker = 0x7ead0003;
    static readonly InetEndPoint Local = new(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
    static readonly InetEndPoint Client = Local with { Port = ClientPort };

    // migrating_sk set: run Migrating (r6 = ctx); else SK_PASS. "select:" takes the key in r1.
    static string Program(string migrating) => $"""
        mov %r6, %r1
        ldxdw %r9, [%r6+48]
        jne %r9, 0, migrating
        mov %r0, 1
        exit
        {ReuseportMembers.SelectTail(SocketsMarker.ToString())}
        migrating:
        {migrating}
        """;

    sealed class Setup : IDisposable
    {
        public readonly NetNamespace Ns = new();
        public readonly Sock[] Listeners;
        public readonly BpfMap Sockets = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 4, 0, "sockets");

        public Setup(bool migrateReq, InetEndPoint? local = null)
        {
            Ns.Sockets.TcpMigrateReq = migrateReq;
            Listeners = [.. Enumerable.Range(0, 3).Select(_ => Listen(local ?? Local))];
            for (int i = 0; i < Listeners.Length; i++)
                Assert.That(Sockets.Update(BitConverter.GetBytes(i), BitConverter.GetBytes(Listeners[i].Cookie)), Is.Zero);
        }

        public Sock Listen(InetEndPoint local)
        {
            var s = Ns.Sockets.Create(local.Family, SocketProtocol.Tcp);
            s.ReusePort = true;
            s.Bind(local);
            s.Listen();
            return s;
        }

        public void Attach(string engine, string migrating, AttachType type = AttachType.SkReuseportSelectOrMigrate, BpfMap? record = null)
        {
            var text = Program(migrating).Replace(SocketsMarker.ToString(), $"0x{(long)Sockets.Handle:x}");
            if (record != null) text = text.Replace(RecordMarker.ToString(), $"0x{(long)record.Handle:x}");
            using var program = SkReuseportProgram.Load("final_ack", Assembler.Assemble(text), Engines.Get(engine), expectedAttachType: type);
            Listeners[0].ReuseportGroup!.Attach(program);
        }

        public void Dispose()
        {
            Sockets.Dispose();
            Ns.Dispose();
        }
    }

    // The client's final ACK; a flow hash that reciprocal_scale maps to the first (low) or the last (high) of two listeners.
    static Packet Ack(uint? hash = null, byte[]? bytes = null) =>
        new Packet(SocketProtocol.Tcp, Client, Local) { FlowHash = hash, Bytes = bytes ?? [] };

    const uint ToFirst = 0x10, ToLast = 0xf000_0000;

    public static IEnumerable<string> EngineNames => Engines.Names;

    [TestCaseSource(nameof(EngineNames))]
    public void TheProgramSelectsTheListener(string engine)
    {
        using var s = new Setup(migrateReq: false);
        s.Attach(engine, "mov %r1, 2\nja select");
        s.Listeners[0].Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.SameAs(s.Listeners[2]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void ADropResetsTheRequest(string engine)
    {
        using var s = new Setup(migrateReq: true);
        s.Attach(engine, "mov %r0, 0\nexit");
        s.Listeners[0].Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.Null);
    }

    [TestCaseSource(nameof(EngineNames))]
    public void NoSelectionLeavesItToTheRequestsHash(string engine)
    {
        using var s = new Setup(migrateReq: false);
        s.Attach(engine, "mov %r0, 1\nexit");
        s.Listeners[0].Close();
        // The close moved listener 2 into listener 0's slot (__reuseport_detach_sock): the group's listeners are [2, 1].
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.SameAs(s.Listeners[2]));
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToLast)), Is.SameAs(s.Listeners[1]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void ASelectionFromAnotherGroupFallsBackToTheHash(string engine)
    {
        using var s = new Setup(migrateReq: false);
        // A listener of the group on another port in slot 2: bpf_sk_select_reuseport refuses it (-EXDEV), SK_PASS follows.
        var other = s.Listen(Local with { Port = Port + 1 });
        Assert.That(other.ReuseportGroup, Is.Not.SameAs(s.Listeners[0].ReuseportGroup));
        Assert.That(s.Sockets.Update(BitConverter.GetBytes(2), BitConverter.GetBytes(other.Cookie)), Is.Zero);
        s.Attach(engine, "mov %r1, 2\nja select");
        s.Listeners[0].Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToLast)), Is.SameAs(s.Listeners[1]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void TheProgramSeesTheAckAndTheRequest(string engine)
    {
        using var s = new Setup(migrateReq: false);
        using var record = MapFactory.Create(MapType.Array, 4, 32, 1, 0, "record");
        s.Attach(engine, $"""
            mov %r1, 0
            stxw [%r10-4], %r1
            lddw %r1, {RecordMarker}
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, out
            mov %r7, %r0
            ldxw %r1, [%r6+16]
            stxw [%r7+0], %r1
            ldxw %r1, [%r6+32]
            stxw [%r7+4], %r1
            ldxdw %r2, [%r6+0]
            ldxdw %r3, [%r6+8]
            mov %r4, %r2
            add %r4, 14
            jgt %r4, %r3, noflags
            ldxb %r1, [%r2+13]
            stxw [%r7+8], %r1
            noflags:
            ldxw %r1, [%r9+72]
            stxw [%r7+12], %r1
            ldxdw %r1, [%r6+40]
            ldxw %r2, [%r1+72]
            stxw [%r7+24], %r2
            call 46
            stxdw [%r7+16], %r0
            ldxw %r1, [%r6+20]
            stxw [%r7+28], %r1
            out:
            mov %r0, 1
            exit
            """, record: record);
        var closed = s.Listeners[0];
        closed.Close();
        var ack = new byte[32];
        ack[12] = 8 << 4;   // 32-byte header: timestamps
        ack[13] = 0x10;
        var packet = Ack(bytes: ack);
        Assert.That(closed.MigrateRequest(packet), Is.Not.Null);
        var seen = new byte[32];
        Assert.That(record.Lookup(BitConverter.GetBytes(0), seen), Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(BitConverter.ToUInt32(seen, 0), Is.EqualTo(32), "len: the ACK from its TCP header on");
            Assert.That(BitConverter.ToUInt32(seen, 4), Is.EqualTo(packet.Hash()), "hash: the request's sk_hash");
            Assert.That(BitConverter.ToUInt32(seen, 8), Is.EqualTo(0x10), "data[13]: the ACK's flags");
            Assert.That(BitConverter.ToUInt32(seen, 12), Is.EqualTo(12), "migrating_sk->state: TCP_NEW_SYN_RECV");
            Assert.That(BitConverter.ToUInt64(seen, 16), Is.EqualTo(closed.Cookie), "bpf_get_socket_cookie(ctx->sk): the closed listener");
            Assert.That(BitConverter.ToUInt32(seen, 24), Is.EqualTo(7), "ctx->sk->state: TCP_CLOSE");
            Assert.That(BitConverter.ToUInt32(seen, 28), Is.EqualTo(8u), "eth_protocol: ETH_P_IP as the skb holds it (big-endian)");
        });
    }

    [TestCaseSource(nameof(EngineNames))]
    public void AnAckWithoutBytesReadsAsABareAck(string engine)
    {
        using var s = new Setup(migrateReq: false);
        // flags == ACK: key 1, else key 2.
        s.Attach(engine, """
            ldxdw %r2, [%r6+0]
            ldxdw %r3, [%r6+8]
            mov %r4, %r2
            add %r4, 20
            mov %r1, 2
            jgt %r4, %r3, select
            ldxb %r5, [%r2+13]
            jne %r5, 16, select
            mov %r1, 1
            ja select
            """);
        s.Listeners[0].Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToLast)), Is.SameAs(s.Listeners[1]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void TcpV6RcvMigratesTheSameWay(string engine)
    {
        InetEndPoint.TryParse("[::1]:9100", out var local6);
        using var s = new Setup(migrateReq: false, local6);
        // eth_protocol ETH_P_IPV6 (86 dd in memory): key 1, else key 2.
        s.Attach(engine, "ldxw %r5, [%r6+20]\nmov %r1, 2\njne %r5, 0xdd86, select\nmov %r1, 1\nja select");
        s.Listeners[0].Close();
        var ack = new Packet(SocketProtocol.Tcp, local6 with { Port = ClientPort }, local6);
        Assert.That(s.Listeners[0].MigrateRequest(ack), Is.SameAs(s.Listeners[1]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void AnIpv4RequestOnADualStackListenerIsAfInet(string engine)
    {
        InetEndPoint.TryParse("[::]:9100", out var any6);
        using var s = new Setup(migrateReq: false, any6);
        // migrating_sk->family == AF_INET (2): key 1, else key 2.
        s.Attach(engine, "ldxw %r5, [%r9+4]\nmov %r1, 2\njne %r5, 2, select\nmov %r1, 1\nja select");
        s.Listeners[0].Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack()), Is.SameAs(s.Listeners[1]), "tcp_v4_conn_request's request is AF_INET");
    }

    [Test]
    public void WithoutAMigrateProgramTcpMigrateReqDecides()
    {
        using (var on = new Setup(migrateReq: true))
        {
            on.Listeners[0].Close();
            Assert.That(on.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.SameAs(on.Listeners[2]));
            Assert.That(on.Listeners[0].MigrateRequest(Ack(ToLast)), Is.SameAs(on.Listeners[1]));
            // Read again at the ACK: turned off since the close, the request is dropped.
            on.Ns.Sockets.TcpMigrateReq = false;
            Assert.That(on.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.Null);
        }
        using var off = new Setup(migrateReq: false);
        off.Listeners[0].Close();
        Assert.That(off.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.Null);
        // Off at the close: the listener left its group (reuseport_detach_sock), turning it on later does not bring it back.
        off.Ns.Sockets.TcpMigrateReq = true;
        Assert.That(off.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.Null);
    }

    [TestCaseSource(nameof(EngineNames))]
    public void ASelectOnlyProgramDoesNotRunForAMigration(string engine)
    {
        using var s = new Setup(migrateReq: true);
        // Loaded for BPF_SK_REUSEPORT_SELECT: it would drop, but reuseport_migrate_sock leaves it to the sysctl and the hash.
        s.Attach(engine, "mov %r0, 0\nexit", AttachType.SkReuseportSelect);
        s.Listeners[0].Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToLast)), Is.SameAs(s.Listeners[1]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void AListenerThatStillListensKeepsItsRequest(string engine)
    {
        using var s = new Setup(migrateReq: false);
        s.Attach(engine, "mov %r0, 0\nexit");
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.SameAs(s.Listeners[0]));
    }

    [TestCaseSource(nameof(EngineNames))]
    public void NoListenerLeftResetsTheRequest(string engine)
    {
        using var s = new Setup(migrateReq: true);
        s.Attach(engine, "mov %r0, 1\nexit");
        foreach (var l in s.Listeners) l.Close();
        Assert.That(s.Listeners[0].MigrateRequest(Ack(ToFirst)), Is.Null);
    }

    [Test]
    public void AListenerOutsideAGroupHasNothingToMigrateTo()
    {
        using var ns = new NetNamespace();
        ns.Sockets.TcpMigrateReq = true;
        var alone = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        alone.Bind(Local);
        alone.Listen();
        alone.Close();
        Assert.That(alone.MigrateRequest(Ack(ToFirst)), Is.Null);
        Assert.Throws<ArgumentException>(() => alone.MigrateRequest(new Packet(SocketProtocol.Udp, Client, Local)));
    }

    [Test]
    public void A_udp_socket_refuses_with_a_typed_error()
    {
        using var ns = new NetNamespace();
        var udp = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        udp.Bind(Local);
        Assert.Throws<NotSupportedException>(() => udp.MigrateRequest(Ack(ToFirst)));
    }
}
