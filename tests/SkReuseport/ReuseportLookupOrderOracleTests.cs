using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// Where an SK_LOOKUP redirect and a reuseport group bound exactly to the destination meet, against the live kernel with
/// real sockets: for UDP, Linux 6.18 looks up the exact-bound socket (running its group's program) before the SK_LOOKUP
/// programs, whose redirect then overrides it (<c>__udp4_lib_lookup</c>); for TCP the SK_LOOKUP programs run first and the
/// group's program never runs (<c>__inet_lookup_listener</c>). The group's program counts its runs in an array, and the
/// SK_LOOKUP program redirects every packet to a socket on another port (or, with <c>redirect</c> off, passes).
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportLookupOrderOracleTests
{
    const ushort Port = 9000, TargetPort = 7000, FirstSource = 40000;
    const int Members = 3, Packets = 6;
    const long RunsMarker = 0x7ead0011, TargetsMarker = 0x7ead0012;

    // runs[0] += 1; then SK_PASS (hash) or, with drop, SK_DROP.
    static string Counter(bool drop) => $"""
        mov %r1, 0
        stxw [%r10-4], %r1
        lddw %r1, {RunsMarker}
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        ldxw %r1, [%r0+0]
        add %r1, 1
        stxw [%r0+0], %r1
        out:
        mov %r0, {(drop ? 0 : 1)}
        exit
        """;

    // sk_assign(targets[0]) when redirect, then SK_PASS.
    static string Redirect(bool redirect) => !redirect ? "mov %r0, 1\nexit" : $"""
        mov %r6, %r1
        mov %r1, 0
        stxw [%r10-4], %r1
        lddw %r1, {TargetsMarker}
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r7, %r0
        mov %r1, %r6
        mov %r2, %r7
        mov %r3, 0
        call 124
        mov %r1, %r7
        call 86
        out:
        mov %r0, 1
        exit
        """;

    static Instruction[] Patch(string asm, long marker, long value, bool fd)
    {
        var insns = Assembler.Assemble(asm.Replace(marker.ToString(), $"0x{value:x}"));
        if (!fd) return insns;
        for (int i = 0; i < insns.Length; i++)
        {
            if (!insns[i].IsLdImm64) continue;
            if (insns[i].Imm == (int)value) insns[i] = insns[i] with { Src = 1 };
            i++;
        }
        return insns;
    }

    /// <summary>(receiver per packet: 0-2 a member, 3 the redirect target, -1 refused; runs of the group's program).</summary>
    public sealed record Outcome(int[] Receivers, uint Runs)
    {
        public override string ToString() => $"[{string.Join(",", Receivers)}] runs {Runs}";
    }

    [Test]
    public void Udp_runs_the_exact_groups_program_before_the_redirect_tcp_does_not(
        [Values("udp", "tcp")] string proto, [Values(true, false)] bool redirect, [Values(false, true)] bool drop)
    {
        RealReuseport.RequireAvailable();
        bool tcp = proto == "tcp";
        var kernel = RealReuseport.InFreshNamespace(() =>
        {
            var fds = new List<int>();
            try
            {
                var members = Enumerable.Range(0, Members).Select(_ => RealReuseport.Member(tcp, Port)).ToArray();
                fds.AddRange(members);
                int target = RealReuseport.Member(tcp, TargetPort);
                fds.Add(target);
                int runs = KernelMaps.CreateMap(2, 4, 4, 1, 0), targets = KernelMaps.CreateMap(15, 4, 8, 1, 0);
                fds.Add(runs);
                fds.Add(targets);
                Assert.That(KernelMaps.Update(targets, BitConverter.GetBytes(0), BitConverter.GetBytes((ulong)target)), Is.Zero);
                int prog = RealReuseport.LoadProgram(Patch(Counter(drop), RunsMarker, runs, fd: true));
                fds.Add(prog);
                RealReuseport.Attach(members[0], prog);
                fds.Add(RealReuseport.AttachSkLookup(Patch(Redirect(redirect), TargetsMarker, targets, fd: true)));
                int[] all = [.. members, target];
                var receivers = Enumerable.Range(0, Packets).Select(i => RealReuseport.Deliver(tcp, all, (ushort)(FirstSource + i), Port, [1, 2])).ToArray();
                var value = new byte[4];
                Assert.That(KernelMaps.Lookup(runs, BitConverter.GetBytes(0), value), Is.Zero);
                return new Outcome(receivers, BitConverter.ToUInt32(value));
            }
            finally
            {
                RealReuseport.Close([.. fds]);
            }
        });
        TestContext.Out.WriteLine($"kernel {kernel}");
        foreach (var engine in Engines.Names)
        {
            var ours = RunBpfJit(tcp, redirect, drop, engine);
            // Without a redirect the group's hash picks, keyed differently from the kernel's: compare who received only when it is not a member.
            bool same = ours.Runs == kernel.Runs && ours.Receivers.Zip(kernel.Receivers).All(p => p.First == p.Second || (p.First is >= 0 and < Members && p.Second is >= 0 and < Members));
            if (!KernelOracle.Agrees(same, () => $"{proto} redirect={redirect} drop={drop} on {engine}: kernel {kernel}, BpfJit {ours}")) return;
        }
    }

    static Outcome RunBpfJit(bool tcp, bool redirect, bool drop, string engine)
    {
        using var ns = new NetNamespace();
        var proto = tcp ? SocketProtocol.Tcp : SocketProtocol.Udp;
        var loopback = InetAddress.FromIp4Raw(0x0100007f);
        Sock Member(ushort port)
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, proto);
            s.ReusePort = true;
            s.Bind(new InetEndPoint(SocketFamily.Inet, loopback, port));
            if (tcp) s.Listen();
            return s;
        }
        var members = Enumerable.Range(0, Members).Select(_ => Member(Port)).ToArray();
        var target = Member(TargetPort);
        using var runs = MapFactory.Create(BpfJit.Frontend.Elf.MapType.Array, 4, 4, 1, 0, "runs");
        using var targets = MapFactory.Create(BpfJit.Frontend.Elf.MapType.SockMap, 4, 8, 1, 0, "targets");
        Assert.That(targets.Update(BitConverter.GetBytes(0), BitConverter.GetBytes(target.Cookie)), Is.Zero);
        using (var program = SkReuseportProgram.Load("count", Patch(Counter(drop), RunsMarker, (long)runs.Handle, fd: false), Engines.Get(engine)))
            members[0].ReuseportGroup!.Attach(program);
        using var lookup = SkLookupProgram.Load("redirect", Patch(Redirect(redirect), TargetsMarker, (long)targets.Handle, fd: false), Engines.Get(engine));
        ns.SkLookup.Attach(lookup);
        Sock[] all = [.. members, target];
        var receivers = new int[Packets];
        for (int i = 0; i < Packets; i++)
        {
            var from = new InetEndPoint(SocketFamily.Inet, loopback, (ushort)(FirstSource + i));
            var r = ns.Lookup(new Packet(proto, from, new InetEndPoint(SocketFamily.Inet, loopback, Port)));
            receivers[i] = r.Outcome == LookupOutcome.Socket ? Array.IndexOf(all, r.Socket) : -1;
        }
        var value = new byte[4];
        Assert.That(runs.Lookup(BitConverter.GetBytes(0), value), Is.Zero);
        return new Outcome(receivers, BitConverter.ToUInt32(value));
    }
}
