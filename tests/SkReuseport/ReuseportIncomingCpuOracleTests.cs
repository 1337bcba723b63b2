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
/// SO_INCOMING_CPU in a reuseport group's hash (<c>reuseport_select_sock_by_hash</c>) against the live kernel: three
/// members on 127.0.0.1:9300, some with SO_INCOMING_CPU set, and a program that records each packet's hash and passes
/// without selecting (the hash decides). The sending thread is pinned to CPU 0, then CPU 1: a loopback packet is looked
/// up on the CPU that sent it. The member that received each packet is compared with BpfJit's lookup of the same packet
/// (<see cref="Packet.Cpu"/> the sending CPU, the kernel's hash) on both engines. Skips where CPUs 0 and 1 cannot both be used.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportIncomingCpuOracleTests
{
    const ushort Port = 9300, FirstSource = 44000;
    const int Members = 3, PerCpu = 12;
    const int SoIncomingCpu = 49;
    const long HashesMarker = 0x7ead0001;

    /// <param name="Name">The case.</param>
    /// <param name="Tcp">TCP listeners (else UDP sockets).</param>
    /// <param name="Cpus">Per member, the SO_INCOMING_CPU values set in turn (none: never set).</param>
    public sealed record Case(string Name, bool Tcp, int[][] Cpus)
    {
        public override string ToString() => Name;
    }

    public static IEnumerable<Case> Cases =>
    [
        new("udp_none_set", false, [[], [], []]),
        new("udp_one_member_on_cpu1", false, [[], [1], []]),
        new("udp_members_on_cpu0_and_cpu1", false, [[], [1], [0]]),
        new("udp_two_members_on_cpu0", false, [[0], [], [0]]),
        new("udp_set_then_cleared", false, [[], [1, -1], []]),
        new("udp_a_cpu_no_packet_uses", false, [[7], [], []]),
        new("tcp_one_member_on_cpu1", true, [[], [1], []]),
        new("tcp_members_on_cpu0_and_cpu1", true, [[0], [], [1]]),
    ];

    // hashes[sport & 63] = hash; SK_PASS without a selection.
    static string Program(long hashes) => $"""
        mov %r6, %r1
        ldxw %r8, [%r6+32]
        ldxdw %r2, [%r6+0]
        ldxdw %r3, [%r6+8]
        mov %r4, %r2
        add %r4, 2
        mov %r7, 0
        jgt %r4, %r3, record
        ldxh %r7, [%r2+0]
        be16 %r7
        record:
        and %r7, 63
        stxw [%r10-4], %r7
        stxw [%r10-8], %r8
        lddw %r1, 0x{hashes:x}
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 2
        mov %r0, 1
        exit
        """;

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    static ushort Source(int cpu, int i) => (ushort)(FirstSource + cpu * PerCpu + i);

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheKernel(Case c)
    {
        RealReuseport.RequireAvailable();
        var (kernel, hashes, defaultCpu) = RunKernel(c);
        TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
        KernelOracle.Agrees(defaultCpu == -1, () => $"SO_INCOMING_CPU of a new socket: kernel {defaultCpu}, BpfJit -1");
        foreach (var engine in Engines.Names)
        {
            var ours = RunBpfJit(c, engine, hashes);
            if (!KernelOracle.Agrees(ours.SequenceEqual(kernel),
                () => $"{c.Name} on {engine}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]"))
                return;
        }
    }

    // Per packet (CPU 0's, then CPU 1's): the member that received it; the packets' hashes; a new socket's SO_INCOMING_CPU.
    static (int[] Outcomes, uint[] Hashes, int DefaultCpu) RunKernel(Case c) => RealReuseport.InFreshNamespace(() =>
    {
        if (!RealReuseport.PinToCpu(1) || !RealReuseport.PinToCpu(0))
            Assert.Ignore("SO_INCOMING_CPU oracle: the test thread cannot be pinned to CPU 0 and CPU 1 (fewer than two CPUs available)");
        var fds = new List<int>();
        try
        {
            var members = Enumerable.Range(0, Members).Select(_ => RealReuseport.Member(c.Tcp, Port)).ToArray();
            fds.AddRange(members);
            int defaultCpu = RealReuseport.GetSocketOption(members[0], SoIncomingCpu);
            for (int i = 0; i < Members; i++)
                foreach (int cpu in c.Cpus[i])
                    Assert.That(RealReuseport.SetSocketOption(members[i], SoIncomingCpu, cpu), Is.Zero, "setsockopt(SO_INCOMING_CPU)");
            int hashMap = KernelMaps.CreateMap(2, 4, 4, 64, 0);
            fds.Add(hashMap);
            int prog = RealReuseport.LoadProgram(RealReuseport.BindMaps(Assembler.Assemble(Program(HashesMarker)), (HashesMarker, hashMap)));
            fds.Add(prog);
            RealReuseport.Attach(members[0], prog);
            var outcomes = new int[2 * PerCpu];
            var hashes = new uint[2 * PerCpu];
            var value = new byte[4];
            for (int cpu = 0; cpu < 2; cpu++)
            {
                Assert.That(RealReuseport.PinToCpu(cpu), Is.True);
                for (int i = 0; i < PerCpu; i++)
                {
                    ushort sport = Source(cpu, i);
                    outcomes[cpu * PerCpu + i] = RealReuseport.Deliver(c.Tcp, members, sport, Port, [(byte)i]);
                    Assert.That(KernelMaps.Lookup(hashMap, Key((uint)(sport & 63)), value), Is.Zero);
                    hashes[cpu * PerCpu + i] = BitConverter.ToUInt32(value);
                }
            }
            return (outcomes, hashes, defaultCpu);
        }
        finally
        {
            RealReuseport.Close([.. fds]);
        }
    });

    static int[] RunBpfJit(Case c, string engine, uint[] hashes)
    {
        using var ns = new NetNamespace();
        var proto = c.Tcp ? SocketProtocol.Tcp : SocketProtocol.Udp;
        var local = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
        var members = ReuseportMembers.Create(ns, proto, local, Members);
        for (int i = 0; i < Members; i++)
            foreach (int cpu in c.Cpus[i]) members[i].IncomingCpu = cpu;
        using var hashMap = MapFactory.Create(MapType.Array, 4, 4, 64, 0, "hashes");
        using (var program = SkReuseportProgram.Load(c.Name, Assembler.Assemble(Program((long)hashMap.Handle)), Engines.Get(engine)))
            members[0].ReuseportGroup!.Attach(program);
        var outcomes = new int[2 * PerCpu];
        for (int cpu = 0; cpu < 2; cpu++)
            for (int i = 0; i < PerCpu; i++)
            {
                var packet = new Packet(proto, local with { Port = Source(cpu, i) }, local) { FlowHash = hashes[cpu * PerCpu + i], Cpu = cpu };
                var r = ns.Lookup(packet);
                outcomes[cpu * PerCpu + i] = r.Outcome == LookupOutcome.Socket ? Array.IndexOf(members, r.Socket) : -1;
            }
        return outcomes;
    }
}
