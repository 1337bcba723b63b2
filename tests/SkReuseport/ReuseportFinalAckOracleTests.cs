using System.Buffers.Binary;
using System.Diagnostics;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// Request migration at the handshake's final ACK (<see cref="Sock.MigrateRequest"/>) against the live kernel. In a
/// fresh namespace: three listeners on 127.0.0.1:9200 in one group, a program that sends every new connection to
/// listener 0 (recording its hash) and, migrating, records <c>len</c> and runs the case; an XDP program on loopback
/// drops the client's bare final ACK, so the request stays TCP_NEW_SYN_RECV on listener 0; listener 0 closes, the
/// client sends one byte (a PSH|ACK segment the XDP program lets through) and <c>tcp_v4_rcv</c> migrates the request
/// with that segment as the packet. The outcome (listener 1 or 2 accepted, or the client was reset) is compared with
/// <see cref="Sock.MigrateRequest"/> on both engines given the same segment and the kernel's hash. A case whose
/// migration the kernel ran from the SYN+ACK retransmit timer (len 0: the segment came later than a second after the
/// SYN) is inconclusive.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportFinalAckOracleTests
{
    const ushort Port = 9200, ClientPort = 43000;
    const int Listeners = 3;
    const long SocketsMarker = 0x7ead0002, RecordMarker = 0x7ead0003;
    const uint Ran = 0x10000;

    /// <param name="Name">The case.</param>
    /// <param name="Migrate">The program's answer when migrating_sk is set (r6 = ctx; "select" takes the key in r1).</param>
    /// <param name="ForMigrate">Loaded for BPF_SK_REUSEPORT_SELECT_OR_MIGRATE (else BPF_SK_REUSEPORT_SELECT).</param>
    /// <param name="MigrateReqAtClose">net.ipv4.tcp_migrate_req when listener 0 closes.</param>
    /// <param name="MigrateReqAtAck">net.ipv4.tcp_migrate_req when the client's segment arrives.</param>
    /// <param name="Payload">The byte the client sends.</param>
    /// <param name="Listener2Cpu">SO_INCOMING_CPU of listener 2, or -1 (not set); when set, the client runs on CPU 0.</param>
    public sealed record Case(string Name, string Migrate, bool ForMigrate, bool MigrateReqAtClose, bool MigrateReqAtAck, byte Payload = (byte)'1',
        int Listener2Cpu = -1)
    {
        public override string ToString() => Name;
    }

    // The key is the payload's digit: bpf_skb_load_bytes of the data offset (data[12] >> 4 words), then of the byte there.
    const string SelectByPayload = """
        mov %r1, %r6
        mov %r2, 12
        mov %r3, %r10
        add %r3, -16
        mov %r4, 1
        call 26
        ldxb %r2, [%r10-16]
        rsh %r2, 4
        lsh %r2, 2
        mov %r1, %r6
        mov %r3, %r10
        add %r3, -16
        mov %r4, 1
        call 26
        ldxb %r1, [%r10-16]
        sub %r1, 48
        ja select
        """;

    public static IEnumerable<Case> Cases =>
    [
        new("migrate_select_fixed", "mov %r1, 2\nja select", ForMigrate: true, false, false),
        new("migrate_select_by_payload_1", SelectByPayload, ForMigrate: true, false, false, (byte)'1'),
        new("migrate_select_by_payload_2", SelectByPayload, ForMigrate: true, false, false, (byte)'2'),
        new("migrate_drop", "mov %r0, 0\nexit", ForMigrate: true, false, false),
        new("migrate_drop_with_tcp_migrate_req", "mov %r0, 0\nexit", ForMigrate: true, true, true),
        new("migrate_pass_falls_back_to_hash", "mov %r0, 1\nexit", ForMigrate: true, false, false),
        // The closed listener left the array at its close: -ENOENT, then SK_PASS without a selection.
        new("migrate_select_the_closed_listener", "mov %r1, 0\nja select", ForMigrate: true, false, false),
        // reuseport_select_sock_by_hash prefers the listener whose SO_INCOMING_CPU is the CPU processing the segment.
        new("migrate_pass_prefers_the_incoming_cpu", "mov %r0, 1\nexit", ForMigrate: true, false, false, Listener2Cpu: 0),
        new("migrate_pass_another_incoming_cpu", "mov %r0, 1\nexit", ForMigrate: true, false, false, Listener2Cpu: 1),
        new("select_program_with_tcp_migrate_req", "mov %r0, 0\nexit", ForMigrate: false, true, true),
        new("select_program_without_tcp_migrate_req", "mov %r0, 0\nexit", ForMigrate: false, false, false),
        new("select_program_tcp_migrate_req_off_at_the_ack", "mov %r0, 0\nexit", ForMigrate: false, true, false),
        new("select_program_tcp_migrate_req_on_only_at_the_ack", "mov %r0, 0\nexit", ForMigrate: false, false, true),
    ];

    // A new connection: record[0] = hash, select key 0. Migrating: record[1] = Ran | len, then the case.
    static string Program(Case c, long sockets, long record) => $"""
        mov %r6, %r1
        ldxdw %r9, [%r6+48]
        mov %r7, 1
        ldxw %r8, [%r6+16]
        or %r8, {Ran}
        jne %r9, 0, recorded
        mov %r7, 0
        ldxw %r8, [%r6+32]
        recorded:
        stxw [%r10-4], %r7
        stxw [%r10-8], %r8
        lddw %r1, 0x{record:x}
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 2
        jne %r9, 0, migrating
        mov %r1, 0
        {ReuseportMembers.SelectTail($"0x{sockets:x}")}
        migrating:
        {c.Migrate}
        """;

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheKernel(Case c)
    {
        RealReuseport.RequireAvailable();
        var (kernel, hash, migrated) = RunKernel(c);
        TestContext.Out.WriteLine($"kernel: {kernel} (hash 0x{hash:x8}, migrate program record 0x{migrated:x})");
        if (c.ForMigrate)
        {
            // The migrate program runs whenever listener 0 closed in its group: at the segment it reads its length.
            if (migrated == Ran) Assert.Inconclusive("the kernel migrated the request from the SYN+ACK timer (len 0), before the client's segment");
            Assert.That(migrated & Ran, Is.EqualTo(Ran), "the kernel ran the migrate program");
        }
        foreach (var engine in Engines.Names)
        {
            int ours = RunBpfJit(c, engine, hash);
            if (!KernelOracle.Agrees(ours == kernel, () => $"{c.Name} on {engine}: kernel {kernel}, BpfJit {ours}"))
                return;
        }
    }

    // The listener (1, 2) that accepted the connection, or -1 (the client was reset); the SYN's hash; record[1].
    static (int Outcome, uint Hash, uint Migrated) RunKernel(Case c) => RealReuseport.InFreshNamespace(() =>
    {
        if (c.Listener2Cpu >= 0 && !RealReuseport.PinToCpu(0))
            Assert.Ignore("the test thread cannot be pinned to CPU 0");
        var fds = new List<int>();
        try
        {
            RealReuseport.Sysctl("net.ipv4.tcp_migrate_req", c.MigrateReqAtClose ? "1" : "0");
            var listeners = Enumerable.Range(0, Listeners).Select(_ => RealReuseport.Member(true, Port)).ToArray();
            fds.AddRange(listeners);
            if (c.Listener2Cpu >= 0) Assert.That(RealReuseport.SetSocketOption(listeners[2], 49 /* SO_INCOMING_CPU */, c.Listener2Cpu), Is.Zero);
            int record = KernelMaps.CreateMap(2, 4, 4, 2, 0), sockets = KernelMaps.CreateMap(20, 4, 8, Listeners, 0);
            fds.AddRange([record, sockets]);
            for (int i = 0; i < Listeners; i++) Assert.That(KernelMaps.Update(sockets, Key((uint)i), BitConverter.GetBytes((ulong)listeners[i])), Is.Zero);
            var insns = RealReuseport.BindMaps(Assembler.Assemble(Program(c, SocketsMarker, RecordMarker)), (SocketsMarker, sockets), (RecordMarker, record));
            int prog = RealReuseport.LoadProgram(insns, c.ForMigrate ? 40u : 39u);
            fds.Add(prog);
            RealReuseport.Attach(listeners[0], prog);
            fds.Add(RealReuseport.DropBareAcks(Port));

            var clock = Stopwatch.StartNew();
            int client = RealReuseport.Client(ClientPort, Port);
            fds.Add(client);
            var value = new byte[4];
            Assert.That(KernelMaps.Lookup(record, Key(0), value), Is.Zero);
            uint hash = BitConverter.ToUInt32(value);
            if (RealReuseport.Readable(listeners[0], 20))
                throw new InvalidOperationException("the final ACK was not held back: listener 0 has an established connection");
            RealReuseport.Close(listeners[0]);
            fds.Remove(listeners[0]);
            RealReuseport.Sysctl("net.ipv4.tcp_migrate_req", c.MigrateReqAtAck ? "1" : "0");
            RealReuseport.Send(client, [c.Payload]);
            var sent = clock.Elapsed;
            int outcome = RealReuseport.AcceptedBy(listeners[1..], client);
            Assert.That(KernelMaps.Lookup(record, Key(1), value), Is.Zero);
            uint migrated = BitConverter.ToUInt32(value);
            if (!c.ForMigrate && sent > TimeSpan.FromMilliseconds(900))
                Assert.Inconclusive($"the segment left {sent.TotalMilliseconds:F0} ms after the SYN: the SYN+ACK timer may have migrated the request first");
            return (outcome < 0 ? -1 : outcome + 1, hash, migrated);
        }
        finally
        {
            RealReuseport.Close([.. fds]);
        }
    });

    static int RunBpfJit(Case c, string engine, uint hash)
    {
        using var ns = new NetNamespace();
        ns.Sockets.TcpMigrateReq = c.MigrateReqAtClose;
        var local = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
        var listeners = ReuseportMembers.Create(ns, SocketProtocol.Tcp, local, Listeners);
        if (c.Listener2Cpu >= 0) listeners[2].IncomingCpu = c.Listener2Cpu;
        using var record = MapFactory.Create(MapType.Array, 4, 4, 2, 0, "record");
        using var sockets = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, Listeners, 0, "sockets");
        for (int i = 0; i < Listeners; i++) Assert.That(sockets.Update(Key((uint)i), BitConverter.GetBytes(listeners[i].Cookie)), Is.Zero);
        using (var program = SkReuseportProgram.Load(c.Name, Assembler.Assemble(Program(c, (long)sockets.Handle, (long)record.Handle)), Engines.Get(engine),
            expectedAttachType: c.ForMigrate ? AttachType.SkReuseportSelectOrMigrate : AttachType.SkReuseportSelect))
            listeners[0].ReuseportGroup!.Attach(program);
        listeners[0].Close();
        ns.Sockets.TcpMigrateReq = c.MigrateReqAtAck;
        var client = local with { Port = ClientPort };
        var taker = listeners[0].MigrateRequest(new Packet(SocketProtocol.Tcp, client, local) { FlowHash = hash, Bytes = Segment(c.Payload), Cpu = c.Listener2Cpu >= 0 ? 0 : null });
        return taker == null ? -1 : Array.IndexOf(listeners, taker);
    }

    // The client's segment from the TCP header on: ports, a 20-byte header, PSH|ACK, one byte of data.
    static byte[] Segment(byte payload)
    {
        var segment = new byte[21];
        BinaryPrimitives.WriteUInt16BigEndian(segment, ClientPort);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), Port);
        segment[12] = 5 << 4;
        segment[13] = 0x18;
        segment[20] = payload;
        return segment;
    }
}
