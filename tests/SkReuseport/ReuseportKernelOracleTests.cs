using System.Buffers.Binary;
using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// SK_REUSEPORT programs against the live kernel with real sockets: the same program, group, maps and packets run
/// in a fresh network namespace (<see cref="RealReuseport"/>) and through BpfJit's lookup on both engines; the socket
/// each packet reaches (or the refusal) must match. The kernel's flow hash is keyed by a boot secret, so every
/// program first records the hash it sees, by source port, and BpfJit's packets carry that hash
/// (<see cref="Packet.FlowHash"/>): selections by hash, and the group's own fallback to the hash, are compared too.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportKernelOracleTests
{
    const ushort Port = 9000, OtherPort = 9001, FirstSource = 40000;
    const int Members = 3, Packets = 24;
    // Placeholders for map addresses in the programs' text: replaced by a handle for BpfJit, by an fd for the kernel.
    const long HashesMarker = 0x7ead0001, SocketsMarker = 0x7ead0002;

    /// <summary>Where a case puts the members: slots 0-2 the group, slot 6 a socket of another group of the same protocol, slot 7 one of the other protocol.</summary>
    public enum Store { ReuseportArray, SockMap, SockHash }

    public sealed record Case(string Name, Store Store, string Body, bool UdpOnly = false)
    {
        public override string ToString() => Name;
    }

    // r6 = ctx; r8 = the hash; r7 = the source port (0 when the packet is shorter than 8 bytes); hashes[sport & 63] = hash.
    static readonly string Prelude = $"""
        mov %r6, %r1
        ldxw %r8, [%r6+32]
        ldxdw %r2, [%r6+0]
        ldxdw %r3, [%r6+8]
        mov %r4, %r2
        add %r4, 8
        mov %r7, 0
        jgt %r4, %r3, record
        ldxh %r7, [%r2+0]
        be16 %r7
        record:
        mov %r1, %r7
        and %r1, 63
        stxw [%r10-4], %r1
        stxw [%r10-8], %r8
        lddw %r1, {HashesMarker}
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 2
        """;

    // bpf_sk_select_reuseport(ctx, sockets, &r1, 0) with the key in r1; the result in r0.
    static readonly string s_select = $"""
        stxw [%r10-12], %r1
        mov %r1, %r6
        lddw %r2, {SocketsMarker}
        mov %r3, %r10
        add %r3, -12
        mov %r4, 0
        call 82
        """;

    static string SelectKey(int key) => $"mov %r1, {key}\n{s_select}";

    const string Pass = "mov %r0, 1\nexit", Drop = "mov %r0, 0\nexit";

    // The verdict after a select: SK_PASS on 0, else SK_DROP (select_sock_b's shape).
    const string PassIfSelected = "jne %r0, 0, drop\nmov %r0, 1\nexit\ndrop:\nmov %r0, 0\nexit";

    // On the errno expected, select key 1 and pass (a distinct outcome); on anything else drop.
    static string OnErrno(int errno) => $"jne %r0, {-errno}, drop\n{SelectKey(1)}\n{Pass}\ndrop:\n{Drop}";

    public static IEnumerable<Case> Cases =>
    [
        new("select_by_hash_reuseport_array", Store.ReuseportArray, $"mov %r1, %r8\nmod %r1, {Members}\n{s_select}\n{Pass}"),
        new("select_fixed_reuseport_array", Store.ReuseportArray, $"{SelectKey(2)}\n{Pass}"),
        new("reuseport_drop", Store.ReuseportArray, Drop),
        new("reuseport_pass_falls_back_to_hash", Store.ReuseportArray, Pass),
        new("select_sock_b_sockmap", Store.SockMap, $"{SelectKey(1)}\n{PassIfSelected}"),
        new("select_by_port_sockhash", Store.SockHash, $"mov %r1, %r7\nmod %r1, {Members}\n{s_select}\n{PassIfSelected}"),
        new("select_by_port_sockmap", Store.SockMap, $"mov %r1, %r7\nmod %r1, {Members}\n{s_select}\n{PassIfSelected}"),
        // The first payload byte, read only after a bounds check: odd source ports send no payload and are dropped.
        new("payload_with_bounds_check", Store.ReuseportArray, $"""
            ldxdw %r2, [%r6+0]
            ldxdw %r3, [%r6+8]
            mov %r4, %r2
            add %r4, 9
            jgt %r4, %r3, drop
            ldxb %r1, [%r2+8]
            mod %r1, {Members}
            {s_select}
            {Pass}
            drop:
            {Drop}
            """, UdpOnly: true),
        new("enoent_empty_slot_array", Store.ReuseportArray, $"{SelectKey(5)}\n{OnErrno(2)}"),
        new("enoent_empty_slot_sockmap", Store.SockMap, $"{SelectKey(5)}\n{OnErrno(2)}"),
        new("ebadfd_other_group", Store.ReuseportArray, $"{SelectKey(6)}\n{OnErrno(77)}"),
        new("eprototype_other_protocol", Store.ReuseportArray, $"{SelectKey(7)}\n{OnErrno(91)}"),
        new("ebadfd_other_group_sockhash", Store.SockHash, $"{SelectKey(6)}\n{OnErrno(77)}"),
        new("error_then_pass_falls_back_to_hash", Store.ReuseportArray, $"{SelectKey(5)}\n{Pass}"),
        // ip_protocol, eth_protocol (ETH_P_IP as a __be16), bind_inany (127.0.0.1: 0), sk->src_port, migrating_sk NULL.
        new("context_fields", Store.ReuseportArray, """
            ldxw %r1, [%r6+24]
            jlt %r1, 6, drop
            ldxh %r1, [%r6+20]
            jne %r1, 8, drop
            ldxh %r1, [%r6+22]
            jne %r1, 8, drop
            ldxb %r1, [%r6+28]
            jne %r1, 0, drop
            ldxdw %r2, [%r6+40]
            ldxw %r1, [%r2+44]
            jne %r1, 9000, drop
            ldxdw %r1, [%r6+48]
            jne %r1, 0, drop
            mov %r1, 2
            """ + $"\n{s_select}\n{Pass}\ndrop:\n{Drop}"),
        new("udp_len_and_payload_helpers", Store.ReuseportArray, $"""
            ldxw %r9, [%r6+16]
            mov %r1, %r6
            mov %r2, 2
            mov %r3, %r10
            add %r3, -16
            mov %r4, 2
            call 26
            jne %r0, 0, drop
            ldxh %r1, [%r10-16]
            be16 %r1
            jne %r1, 9000, drop
            mov %r1, %r6
            mov %r2, 9
            mov %r3, %r10
            add %r3, -16
            mov %r4, 1
            mov %r5, 1
            call 68
            jne %r0, 0, drop
            ldxb %r1, [%r10-16]
            jne %r1, 17, drop
            mov %r1, %r9
            mod %r1, {Members}
            {s_select}
            {Pass}
            drop:
            {Drop}
            """, UdpOnly: true),
    ];

    static byte[] Payload(int sourcePort) => sourcePort % 2 == 1 ? [] : [(byte)(sourcePort * 7), 1, 2, 3];

    static string Program(string body, long hashes, long sockets) =>
        (Prelude + "\n" + body).Replace(HashesMarker.ToString(), $"0x{hashes:x}").Replace(SocketsMarker.ToString(), $"0x{sockets:x}");

    static uint KernelMapType(Store store) => store switch { Store.ReuseportArray => 20, Store.SockMap => 15, _ => 18 };

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheKernel(Case c)
    {
        RealReuseport.RequireAvailable();
        foreach (bool tcp in new[] { false, true })
        {
            if (tcp && c.UdpOnly) continue;
            var (kernel, hashes) = RunKernel(c, tcp);
            TestContext.Out.WriteLine($"{(tcp ? "tcp" : "udp")}: kernel [{string.Join(",", kernel)}]");
            foreach (var engine in Engines.Names)
            {
                var ours = RunBpfJit(c, tcp, engine, hashes);
                if (!KernelOracle.Agrees(ours.SequenceEqual(kernel),
                    () => $"{c.Name} {(tcp ? "tcp" : "udp")} on {engine}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]"))
                    return;
            }
        }
    }

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    // The kernel's outcomes per source port (member index, -1 refused) and the hash it showed the program for each.
    static (int[] Outcomes, uint[] Hashes) RunKernel(Case c, bool tcp) => RealReuseport.InFreshNamespace(() =>
    {
        var fds = new List<int>();
        try
        {
            var members = Enumerable.Range(0, Members).Select(_ => RealReuseport.Member(tcp, Port)).ToArray();
            fds.AddRange(members);
            int otherGroup = RealReuseport.Member(tcp, OtherPort), otherProtocol = RealReuseport.Member(!tcp, Port);
            fds.Add(otherGroup);
            fds.Add(otherProtocol);
            int hashMap = KernelMaps.CreateMap(2, 4, 4, 64, 0);
            int sockets = KernelMaps.CreateMap(KernelMapType(c.Store), 4, 8, 8, 0);
            Assert.That(hashMap, Is.GreaterThanOrEqualTo(0));
            Assert.That(sockets, Is.GreaterThanOrEqualTo(0));
            fds.Add(hashMap);
            fds.Add(sockets);
            for (int i = 0; i < Members; i++) Assert.That(KernelMaps.Update(sockets, Key((uint)i), BitConverter.GetBytes((ulong)members[i])), Is.Zero, "kernel update");
            Assert.That(KernelMaps.Update(sockets, Key(6), BitConverter.GetBytes((ulong)otherGroup)), Is.Zero);
            if (c.Store != Store.SockMap && c.Store != Store.SockHash || tcp)
                Assert.That(KernelMaps.Update(sockets, Key(7), BitConverter.GetBytes((ulong)otherProtocol)), Is.Zero);
            var insns = Assembler.Assemble(Program(c.Body, HashesMarker, SocketsMarker));
            for (int i = 0; i < insns.Length; i++)
            {
                if (!insns[i].IsLdImm64) continue;
                if (insns[i].Imm == HashesMarker) insns[i] = insns[i] with { Src = 1, Imm = hashMap };
                else if (insns[i].Imm == SocketsMarker) insns[i] = insns[i] with { Src = 1, Imm = sockets };
                i++;
            }
            int prog = RealReuseport.LoadProgram(insns);
            fds.Add(prog);
            RealReuseport.Attach(members[0], prog);
            var outcomes = new int[Packets];
            var hashes = new uint[Packets];
            for (int i = 0; i < Packets; i++)
            {
                int sport = FirstSource + i;
                outcomes[i] = RealReuseport.Deliver(tcp, members, (ushort)sport, Port, Payload(sport));
                var value = new byte[4];
                Assert.That(KernelMaps.Lookup(hashMap, Key((uint)(sport & 63)), value), Is.Zero);
                hashes[i] = BitConverter.ToUInt32(value);
            }
            return (outcomes, hashes);
        }
        finally
        {
            RealReuseport.Close([.. fds]);
        }
    });

    static int[] RunBpfJit(Case c, bool tcp, string engine, uint[] hashes)
    {
        using var ns = new NetNamespace();
        var proto = tcp ? SocketProtocol.Tcp : SocketProtocol.Udp;
        Sock Member(SocketProtocol p, ushort port)
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, p);
            s.ReusePort = true;
            s.Bind(new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), port));
            if (p == SocketProtocol.Tcp) s.Listen();
            return s;
        }
        var members = Enumerable.Range(0, Members).Select(_ => Member(proto, Port)).ToArray();
        var otherGroup = Member(proto, OtherPort);
        var otherProtocol = Member(tcp ? SocketProtocol.Udp : SocketProtocol.Tcp, Port);
        using var hashMap = MapFactory.Create(BpfJit.Frontend.Elf.MapType.Array, 4, 4, 64, 0, "hashes");
        using var sockets = MapFactory.Create((BpfJit.Frontend.Elf.MapType)KernelMapType(c.Store), 4, 8, 8, 0, "sockets");
        for (int i = 0; i < Members; i++) Assert.That(sockets.Update(Key((uint)i), BitConverter.GetBytes(members[i].Cookie)), Is.Zero, "BpfJit update");
        Assert.That(sockets.Update(Key(6), BitConverter.GetBytes(otherGroup.Cookie)), Is.Zero);
        if (c.Store != Store.SockMap && c.Store != Store.SockHash || tcp)
            Assert.That(sockets.Update(Key(7), BitConverter.GetBytes(otherProtocol.Cookie)), Is.Zero);
        using (var program = SkReuseportProgram.Load(c.Name, Assembler.Assemble(Program(c.Body, (long)hashMap.Handle, (long)sockets.Handle)), Engines.Get(engine)))
            members[0].ReuseportGroup!.Attach(program);
        var outcomes = new int[Packets];
        for (int i = 0; i < Packets; i++)
        {
            ushort sport = (ushort)(FirstSource + i);
            var from = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), sport);
            var to = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
            var packet = new Packet(proto, from, to) { FlowHash = hashes[i], Bytes = tcp ? default : Udp(sport, Payload(sport)) };
            var r = ns.Lookup(packet);
            outcomes[i] = r.Outcome == LookupOutcome.Socket ? Array.IndexOf(members, r.Socket) : r.Outcome == LookupOutcome.Refused ? -1 : -2;
        }
        return outcomes;
    }

    /// <summary>
    /// SOCKMAP/SOCKHASH and REUSEPORT_SOCKARRAY both claim a socket's <c>sk_user_data</c>: the errnos of each update in
    /// this sequence, from the kernel and from BpfJit, must be the same.
    /// </summary>
    [Test]
    public void SockMapAndReuseportArrayShareSkUserData()
    {
        RealReuseport.RequireAvailable();
        // (map, op, key, socket): "u" update, "d" delete; maps 0 REUSEPORT_SOCKARRAY, 1 SOCKMAP, 2 SOCKHASH.
        (int Map, char Op, uint Key, int Socket)[] steps =
        [
            (1, 'u', 0, 0), (0, 'u', 0, 0), (1, 'd', 0, 0), (0, 'u', 0, 0), (1, 'u', 1, 0), (2, 'u', 1, 0),
            (2, 'u', 0, 1), (2, 'u', 1, 1), (0, 'u', 1, 1), (2, 'd', 0, 0), (0, 'u', 1, 1), (2, 'd', 1, 0), (0, 'u', 1, 1),
            (0, 'd', 0, 0), (1, 'u', 0, 0),
        ];
        int[] kernel = RealReuseport.InFreshNamespace(() =>
        {
            var fds = new List<int>();
            try
            {
                int[] socks = [RealReuseport.Member(false, Port), RealReuseport.Member(false, Port)];
                fds.AddRange(socks);
                int[] maps = [KernelMaps.CreateMap(20, 4, 8, 4, 0), KernelMaps.CreateMap(15, 4, 8, 4, 0), KernelMaps.CreateMap(18, 4, 8, 4, 0)];
                fds.AddRange(maps);
                return steps.Select(st => st.Op == 'u'
                    ? KernelMaps.Update(maps[st.Map], Key(st.Key), BitConverter.GetBytes((ulong)socks[st.Socket]))
                    : KernelMaps.Delete(maps[st.Map], Key(st.Key))).ToArray();
            }
            finally
            {
                RealReuseport.Close([.. fds]);
            }
        });
        using var ns = new NetNamespace();
        var members = Enumerable.Range(0, 2).Select(_ =>
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
            s.ReusePort = true;
            s.Bind(new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port));
            return s;
        }).ToArray();
        BpfMap[] ours = [MapFactory.Create(BpfJit.Frontend.Elf.MapType.ReuseportSockArray, 4, 8, 4, 0, "rp"),
            MapFactory.Create(BpfJit.Frontend.Elf.MapType.SockMap, 4, 8, 4, 0, "sm"), MapFactory.Create(BpfJit.Frontend.Elf.MapType.SockHash, 4, 8, 4, 0, "sh")];
        try
        {
            var results = steps.Select(st => st.Op == 'u'
                ? ours[st.Map].Update(Key(st.Key), BitConverter.GetBytes(members[st.Socket].Cookie))
                : ours[st.Map].Delete(Key(st.Key))).ToArray();
            TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
            KernelOracle.Agrees(results.SequenceEqual(kernel), () => $"kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", results)}]");
        }
        finally
        {
            foreach (var m in ours) m.Dispose();
        }
    }

    static byte[] Udp(ushort sport, byte[] payload)
    {
        var d = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(d, sport);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(2), Port);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(4), (ushort)d.Length);
        payload.CopyTo(d, 8);
        return d;
    }
}
