using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// The hook reuses one context block per thread; the kernel builds a fresh context per lookup. A filled
/// block must therefore read exactly as a fresh one filled with the same packet, whatever the block held
/// before (the other family's addresses, a selected socket, no_reuseport).
/// </summary>
[TestFixture]
public class ContextReuseTests
{
    static readonly Packet[] s_packets =
    [
        new(SocketProtocol.Tcp, Ep("192.0.2.7:40000"), Ep("10.1.2.3:80"), 3),
        new(SocketProtocol.Udp, Ep("[fd00::1:2]:5353"), Ep("[fd00::ff:1]:53"), 2),
        new(SocketProtocol.Udp, Ep("198.51.100.9:1"), Ep("203.0.113.4:65535"), 1),
        new(SocketProtocol.Tcp, Ep("[2001:db8::9]:65535"), Ep("[2001:db8::1]:443"), 7),
    ];

    [Test]
    public void AReusedBlockReadsAsAFreshOne()
    {
        using var reused = new SkLookupContext();
        foreach (var previous in s_packets)
        foreach (var packet in s_packets)
        {
            reused.Fill(previous);
            reused.SelectedSocket = unchecked((nint)0x1122334455667788);   // what sk_assign leaves behind
            reused.NoReuseport = true;
            reused.Fill(packet);
            using var fresh = new SkLookupContext();
            fresh.Fill(packet);
            Assert.That(reused.Visible.ToArray(), Is.EqualTo(fresh.Visible.ToArray()), $"{packet} after {previous}");
            Assert.That((reused.SelectedSocket, reused.NoReuseport), Is.EqualTo(((nint)0, false)), $"{packet} after {previous}");
        }
    }
}
