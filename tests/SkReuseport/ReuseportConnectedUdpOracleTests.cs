using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// UDP reuseport groups with a connected member against the live kernel (<c>udp4_lib_lookup2</c>: a group with
/// connections falls back to scoring, the program's selection is re-scored, a connected socket's own 4-tuple wins):
/// three members on 127.0.0.1:9000, member 1 connected to one client port, an SK_REUSEPORT program attached; for each
/// source port the member that receives (or the refusal), and which member the program saw as <c>ctx-&gt;sk</c>
/// (by cookie), must be the kernel's on both engines.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportConnectedUdpOracleTests
{
    const ushort Port = 9000, FirstSource = 40000, ConnectedPeer = 40005;
    const int Members = 3, Packets = 12, Connected = 1;
    const long HashesMarker = 0x7ead0001, SocketsMarker = 0x7ead0002, SkMarker = 0x7ead0003;

    public sealed record Case(string Name, string Body)
    {
        public override string ToString() => Name;
    }

    // r6 = ctx; r8 = the hash; r7 = the source port; hashes[sport & 63] = hash; sks[sport & 63] = cookie(ctx->sk).
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
        and %r7, 63
        stxw [%r10-4], %r7
        stxw [%r10-8], %r8
        lddw %r1, {HashesMarker}
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 2
        ldxdw %r1, [%r6+40]
        call 46
        stxdw [%r10-16], %r0
        lddw %r1, {SkMarker}
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 2
        """;

    static readonly string s_select = $"""
        stxw [%r10-20], %r1
        mov %r1, %r6
        lddw %r2, {SocketsMarker}
        mov %r3, %r10
        add %r3, -20
        mov %r4, 0
        call 82
        """;

    const string Pass = "mov %r0, 1\nexit", Drop = "mov %r0, 0\nexit";

    public static IEnumerable<Case> Cases =>
    [
        new("select_by_hash", $"mov %r1, %r8\nmod %r1, {Members}\n{s_select}\n{Pass}"),
        new("select_the_connected_member", $"mov %r1, {Connected}\n{s_select}\n{Pass}"),
        new("select_member_0", $"mov %r1, 0\n{s_select}\n{Pass}"),
        new("pass_falls_back_to_hash", Pass),
        new("drop", Drop),
    ];

    static string Program(string body, long hashes, long sockets, long sks) => (Prelude + "\n" + body)
        .Replace(HashesMarker.ToString(), $"0x{hashes:x}").Replace(SocketsMarker.ToString(), $"0x{sockets:x}").Replace(SkMarker.ToString(), $"0x{sks:x}");

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    /// <summary>One packet's outcome: the member that received (-1 refused) and the member the program saw as ctx->sk (-1: it did not run).</summary>
    public readonly record struct Outcome(int Receiver, int CtxSk)
    {
        public override string ToString() => $"{Receiver}/{CtxSk}";
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheKernel(Case c)
    {
        RealReuseport.RequireAvailable();
        var (kernel, hashes) = RunKernel(c);
        TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
        foreach (var engine in Engines.Names)
        {
            var ours = RunBpfJit(c, engine, hashes);
            if (!KernelOracle.Agrees(ours.SequenceEqual(kernel),
                () => $"{c.Name} on {engine}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]"))
                return;
        }
    }

    /// <summary>
    /// The connected member leaves its REUSEPORT_SOCKARRAY slot and can no longer be stored: the errnos of lookup of its
    /// slot and of an update with it after connect(), from the kernel and from BpfJit.
    /// </summary>
    [Test]
    public void ConnectedMemberLeavesItsGroupAndArray()
    {
        RealReuseport.RequireAvailable();
        var value = new byte[8];
        int[] kernel = RealReuseport.InFreshNamespace(() =>
        {
            int a = RealReuseport.Member(false, Port), b = RealReuseport.Member(false, Port);
            int map = KernelMaps.CreateMap(20, 4, 8, 4, 0);
            try
            {
                int before = KernelMaps.Update(map, Key(1), BitConverter.GetBytes((ulong)b));
                RealReuseport.ConnectTo(b, ConnectedPeer);
                return new[] { before, KernelMaps.Lookup(map, Key(1), value), KernelMaps.Update(map, Key(2), BitConverter.GetBytes((ulong)b)),
                    KernelMaps.Update(map, Key(0), BitConverter.GetBytes((ulong)a)) };
            }
            finally
            {
                RealReuseport.Close(a, b, map);
            }
        });
        using var ns = new NetNamespace();
        var local = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
        var socks = Enumerable.Range(0, 2).Select(_ =>
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
            s.ReusePort = true;
            s.Bind(local);
            return s;
        }).ToArray();
        using var ours = MapFactory.Create(BpfJit.Frontend.Elf.MapType.ReuseportSockArray, 4, 8, 4, 0, "rp");
        int first = ours.Update(Key(1), BitConverter.GetBytes(socks[1].Cookie));
        socks[1].Connect(local with { Port = ConnectedPeer });
        int[] results = [first, ours.Lookup(Key(1), value), ours.Update(Key(2), BitConverter.GetBytes(socks[1].Cookie)),
            ours.Update(Key(0), BitConverter.GetBytes(socks[0].Cookie))];
        TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
        KernelOracle.Agrees(results.SequenceEqual(kernel), () => $"kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", results)}]");
    }

    static (Outcome[] Outcomes, uint[] Hashes) RunKernel(Case c) => RealReuseport.InFreshNamespace(() =>
    {
        var fds = new List<int>();
        try
        {
            var members = Enumerable.Range(0, Members).Select(_ => RealReuseport.Member(false, Port)).ToArray();
            fds.AddRange(members);
            var cookies = members.Select(RealReuseport.Cookie).ToArray();
            int hashMap = KernelMaps.CreateMap(2, 4, 4, 64, 0), skMap = KernelMaps.CreateMap(2, 4, 8, 64, 0);
            int sockets = KernelMaps.CreateMap(20, 4, 8, 8, 0);
            fds.AddRange([hashMap, skMap, sockets]);
            for (int i = 0; i < Members; i++) Assert.That(KernelMaps.Update(sockets, Key((uint)i), BitConverter.GetBytes((ulong)members[i])), Is.Zero);
            var insns = Assembler.Assemble(Program(c.Body, HashesMarker, SocketsMarker, SkMarker));
            for (int i = 0; i < insns.Length; i++)
            {
                if (!insns[i].IsLdImm64) continue;
                int fd = insns[i].Imm == HashesMarker ? hashMap : insns[i].Imm == SocketsMarker ? sockets : insns[i].Imm == SkMarker ? skMap : -1;
                if (fd >= 0) insns[i] = insns[i] with { Src = 1, Imm = fd };
                i++;
            }
            int prog = RealReuseport.LoadProgram(insns);
            fds.Add(prog);
            RealReuseport.Attach(members[0], prog);
            RealReuseport.ConnectTo(members[Connected], ConnectedPeer);
            var outcomes = new Outcome[Packets];
            var hashes = new uint[Packets];
            for (int i = 0; i < Packets; i++)
            {
                int sport = FirstSource + i;
                int receiver = RealReuseport.Deliver(false, members, (ushort)sport, Port, [1, 2, 3, 4]);
                var value = new byte[8];
                Assert.That(KernelMaps.Lookup(hashMap, Key((uint)(sport & 63)), value.AsSpan(0, 4)), Is.Zero);
                hashes[i] = BitConverter.ToUInt32(value);
                Assert.That(KernelMaps.Lookup(skMap, Key((uint)(sport & 63)), value), Is.Zero);
                outcomes[i] = new Outcome(receiver, Array.IndexOf(cookies, BitConverter.ToUInt64(value)));
                Assert.That(KernelMaps.Update(skMap, Key((uint)(sport & 63)), new byte[8]), Is.Zero);
            }
            return (outcomes, hashes);
        }
        finally
        {
            RealReuseport.Close([.. fds]);
        }
    });

    static Outcome[] RunBpfJit(Case c, string engine, uint[] hashes)
    {
        using var ns = new NetNamespace();
        var local = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
        var members = Enumerable.Range(0, Members).Select(_ =>
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
            s.ReusePort = true;
            s.Bind(local);
            return s;
        }).ToArray();
        using var hashMap = MapFactory.Create(BpfJit.Frontend.Elf.MapType.Array, 4, 4, 64, 0, "hashes");
        using var skMap = MapFactory.Create(BpfJit.Frontend.Elf.MapType.Array, 4, 8, 64, 0, "sks");
        using var sockets = MapFactory.Create(BpfJit.Frontend.Elf.MapType.ReuseportSockArray, 4, 8, 8, 0, "sockets");
        for (int i = 0; i < Members; i++) Assert.That(sockets.Update(Key((uint)i), BitConverter.GetBytes(members[i].Cookie)), Is.Zero);
        using (var program = SkReuseportProgram.Load(c.Name, Assembler.Assemble(Program(c.Body, (long)hashMap.Handle, (long)sockets.Handle, (long)skMap.Handle)),
            Engines.Get(engine)))
            members[0].ReuseportGroup!.Attach(program);
        members[Connected].Connect(local with { Port = ConnectedPeer });
        var outcomes = new Outcome[Packets];
        var value = new byte[8];
        for (int i = 0; i < Packets; i++)
        {
            ushort sport = (ushort)(FirstSource + i);
            var packet = new Packet(SocketProtocol.Udp, local with { Port = sport }, local) { FlowHash = hashes[i] };
            var r = ns.Lookup(packet);
            int receiver = r.Outcome == LookupOutcome.Socket ? Array.IndexOf(members, r.Socket) : r.Outcome == LookupOutcome.Refused ? -1 : -2;
            Assert.That(skMap.Lookup(Key((uint)(sport & 63)), value), Is.Zero);
            ulong cookie = BitConverter.ToUInt64(value);
            outcomes[i] = new Outcome(receiver, Array.FindIndex(members, m => m.Cookie == cookie));
            Assert.That(skMap.Update(Key((uint)(sport & 63)), new byte[8]), Is.Zero);
        }
        return outcomes;
    }
}
