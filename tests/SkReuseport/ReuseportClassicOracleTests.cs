using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkReuseport.ClassicFilterTests;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// SO_ATTACH_REUSEPORT_CBPF against the live kernel with real sockets (<see cref="RealReuseport"/>): the same classic
/// program attached to three members, the same packets sent, and the member each reaches compared with the one
/// BpfJit's group selects; refusals compared errno for errno.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportClassicOracleTests
{
    const ushort Port = 9000;
    const int Members = 3;

    public sealed record Case(string Name, bool Tcp, SockFilter[] Code, bool Hash = false)
    {
        public override string ToString() => Name;
    }

    public static IEnumerable<Case> Cases()
    {
        yield return new("udp: ldb [0]; mod #3", false, [S(0x30, 0), S(0x94, 3), S(0x16)]);
        yield return new("udp: ld len; mod #3", false, [S(0x80), S(0x94, 3), S(0x16)]);
        yield return new("udp: ldb [net+9] (17); mod #3", false, [S(0x30, NetOff + 9), S(0x94, 3), S(0x16)]);
        yield return new("udp: ld [4] past a short payload returns 0", false, [S(0x20, 4), S(0x04, 1), S(0x94, 3), S(0x16)]);
        yield return new("udp: ldb [x+1] with x = [0]", false, [S(0x30, 0), S(0x07), S(0x50, 1), S(0x94, 3), S(0x16)]);
        yield return new("udp: M[] and jumps", false, [S(0x30, 0), S(0x02, 4), S(0x25, 1, 0, 1), S(0x06, 2), S(0x60, 4), S(0x16)]);
        yield return new("udp: ld #poff; mod #3", false, [S(0x20, AdOff + 52), S(0x94, 3), S(0x16)]);
        yield return new("udp: ret #7 (past the members: the hash)", false, [S(0x06, 7)], Hash: true);
        yield return new("tcp: ret #3 (past the members: the hash)", true, [S(0x06, 3)], Hash: true);
        yield return new("udp: ld #hatype == 772 -> 2", false, [S(0x20, AdOff + 28), S(0x15, 772, 0, 1), S(0x06, 2), S(0x06, 0)]);
        yield return new("tcp: ret #1", true, [S(0x06, 1)]);
        yield return new("tcp: ld len (0 past the header) -> 0; add #2", true, [S(0x80), S(0x04, 2), S(0x16)]);
        yield return new("tcp: ldxb 4*([net]&0xf); txa; sub #19", true, [S(0xb1, NetOff), S(0x87), S(0x14, 19), S(0x16)]);
        yield return new("tcp: ld [0] past the end returns 0", true, [S(0x20, 0), S(0x04, 2), S(0x16)]);
    }

    static readonly byte[][] Payloads = [[0], [1, 7], [2, 0, 0], [0, 2, 0, 0, 0], [1], [2, 1, 1, 1, 1, 1], [0, 0]];

    [TestCaseSource(nameof(Cases))]
    public void Same_member_as_the_kernel(Case c) => SameMember(c, v6: false);

    /// <summary>
    /// The same filters and packets between AF_INET6 members on [::1]:9000: the IPv6 header the runtime builds in front
    /// (SKF_NET_OFF loads), <c>protocol</c> 0x86dd, and the payload after the transport header. A filter whose answer
    /// for IPv6 indexes past the members (the IPv4-header cases) falls back to the hash on both sides.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void Same_member_as_the_kernel_over_ipv6(Case c) => SameMember(c, v6: true);

    static void SameMember(Case c, bool v6)
    {
        RealReuseport.RequireAvailable();
        var filter = new ClassicFilter(c.Code);
        int packets = c.Tcp ? 3 : Payloads.Length;
        var kernel = RealReuseport.InFreshNamespace(() =>
        {
            var fds = Enumerable.Range(0, Members).Select(_ => RealReuseport.Member(c.Tcp, Port, v6)).ToArray();
            try
            {
                Assert.That(RealReuseport.AttachClassic(fds[0], c.Code), Is.Zero);
                return Enumerable.Range(0, packets).Select(i => RealReuseport.Deliver(c.Tcp, fds, (ushort)(40000 + i), Port, Payloads[i], v6)).ToArray();
            }
            finally
            {
                RealReuseport.Close(fds);
            }
        });
        TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
        using var ns = new NetNamespace();
        string local = v6 ? "[::1]:9000" : "127.0.0.1:9000";
        var members = Enumerable.Range(0, Members)
            .Select(_ => c.Tcp ? Tcp(ns, local, reuseport: true) : Udp(ns, local, reuseport: true)).ToArray();
        members[0].ReuseportGroup!.AttachClassic(filter);
        for (int i = 0; i < packets; i++)
        {
            string from = v6 ? $"[::1]:{40000 + i}" : $"127.0.0.1:{40000 + i}";
            var packet = c.Tcp ? Pkt("tcp", from, local) : UdpPacket(Payloads[i], (ushort)(40000 + i)) with
            {
                From = Ep(from), To = Ep(local),
            };
            var got = ns.Lookup(packet).Socket;
            if (c.Hash || (v6 && !(filter.Run(packet, packet.Hash()) is uint index && index < Members)))
            {
                // The kernel's hash is keyed by a boot secret: both deliver, BpfJit where its own hash points.
                Assert.That(kernel[i], Is.GreaterThanOrEqualTo(0), $"packet {i}: the kernel delivered");
                Assert.That(got, Is.SameAs(members[0].ReuseportGroup!.SelectByHash(packet.Hash(), packet)), $"packet {i}");
            }
            else Assert.That(Array.IndexOf(members, got), Is.EqualTo(kernel[i]), $"packet {i}");
        }
    }

    [Test]
    public void Refusals_match_the_kernel()
    {
        RealReuseport.RequireAvailable();
        var cases = Refused().Select(t => (SockFilter[])t.Arguments[0]!).Where(c => c.Length > 0).ToArray();
        var errnos = RealReuseport.InFreshNamespace(() =>
        {
            int fd = RealReuseport.Member(false, Port);
            try
            {
                return cases.Select(c => RealReuseport.AttachClassic(fd, c)).ToArray();
            }
            finally
            {
                RealReuseport.Close(fd);
            }
        });
        for (int i = 0; i < cases.Length; i++)
            Assert.That(errnos[i], Is.EqualTo(BpfJit.Runtime.Errno.EINVAL), $"kernel on case {i}");
    }
}
