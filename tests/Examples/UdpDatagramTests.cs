using System.Buffers.Binary;
using System.Text;
using BpfJit.Examples.UdpEcho;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Tests.Examples;

/// <summary>
/// The UdpEcho example's span-based IP/UDP parser and builder, against two datagrams whose checksums
/// were computed independently (RFC 1071 in a separate script) and against damaged copies of them.
/// </summary>
public class UdpDatagramTests
{
    // 10.77.0.254:40000 -> 10.77.0.1:7003 "tok", id 0x1234, DF, TTL 64.
    const string V4 = "4500001f12344000401113020a4d00fe0a4d00019c401b5b000b5334746f6b";
    // [fd77::fe]:40000 -> [fd77::2]:1234 "tok", hop limit 64.
    const string V6 = "60000000000b1140fd7700000000000000000000000000fefd7700000000000000000000000000029c4004d2000b8366746f6b";

    static byte[] Hex(string s) => Convert.FromHexString(s);

    [Test]
    public void ParsesAnIpv4Datagram()
    {
        Assert.That(UdpDatagram.TryParse(Hex(V4), out var d, out string reason), Is.True, reason);
        Assert.That(d.Family, Is.EqualTo(SocketFamily.Inet));
        Assert.That(d.Source.ToString(), Is.EqualTo("10.77.0.254:40000"));
        Assert.That(d.Destination.ToString(), Is.EqualTo("10.77.0.1:7003"));
        Assert.That(Encoding.ASCII.GetString(d.Payload), Is.EqualTo("tok"));
    }

    [Test]
    public void ParsesAnIpv6Datagram()
    {
        Assert.That(UdpDatagram.TryParse(Hex(V6), out var d, out string reason), Is.True, reason);
        Assert.That(d.Family, Is.EqualTo(SocketFamily.Inet6));
        Assert.That(d.Source.ToString(), Is.EqualTo("[fd77::fe]:40000"));
        Assert.That(d.Destination.ToString(), Is.EqualTo("[fd77::2]:1234"));
        Assert.That(Encoding.ASCII.GetString(d.Payload), Is.EqualTo("tok"));
    }

    [Test]
    public void WritesTheSameBytesAsTheIndependentEncoder()
    {
        var buffer = new byte[100];
        var v4 = Hex(V4);
        int n = UdpDatagram.Write(buffer, v4.AsSpan(12, 4), 40000, v4.AsSpan(16, 4), 7003, "tok"u8, identification: 0x1234);
        Assert.That(Convert.ToHexString(buffer, 0, n).ToLowerInvariant(), Is.EqualTo(V4));
        var v6 = Hex(V6);
        n = UdpDatagram.Write(buffer, v6.AsSpan(8, 16), 40000, v6.AsSpan(24, 16), 1234, "tok"u8);
        Assert.That(Convert.ToHexString(buffer, 0, n).ToLowerInvariant(), Is.EqualTo(V6));
    }

    [Test]
    public void AnIpv4DatagramWithoutAChecksumIsAccepted()
    {
        var p = Hex(V4);
        p[26] = p[27] = 0;
        Assert.That(UdpDatagram.TryParse(p, out _, out string reason), Is.True, reason);
    }

    [Test]
    public void AComputedZeroChecksumIsSentAsAllOnes()
    {
        // Find a payload whose checksum computes to 0; RFC 768 says it is then sent as 0xffff.
        var buffer = new byte[64];
        byte[] a = [10, 0, 0, 1], b = [10, 0, 0, 2];
        for (int v = 0; v <= 0xffff; v++)
        {
            byte[] payload = [(byte)(v >> 8), (byte)v];
            int n = UdpDatagram.Write(buffer, a, 1, b, 2, payload);
            ushort sum = BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(26));
            if (sum != 0xffff) continue;
            Assert.That(UdpDatagram.TryParse(buffer.AsSpan(0, n), out _, out string reason), Is.True, reason);
            return;
        }
        Assert.Fail("no 2-byte payload has a zero checksum");
    }

    static void FixIp4HeaderChecksum(byte[] p)
    {
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Fold(Checksum.Add(0, p.AsSpan(0, 20))));
    }

    static IEnumerable<TestCaseData> Damaged()
    {
        TestCaseData Case(string name, string packet, Func<byte[], byte[]> damage, string reason) =>
            new TestCaseData(packet, damage, reason).SetName($"Rejects {name}");
        yield return Case("an empty packet", V4, _ => [], "empty packet");
        yield return Case("IP version 5", V4, p => { p[0] = 0x55; return p; }, "IP version 5");
        yield return Case("a short IPv4 header", V4, p => p[..19], "shorter than a header");
        yield return Case("an IPv4 header longer than the packet", V4, p => { p[0] = 0x4f; return p; }, "header length 60");
        yield return Case("an IPv4 total length past the packet", V4, p => p[..^1], "total length 31 of 30 bytes");
        yield return Case("a bad IPv4 header checksum", V4, p => { p[8] = 63; return p; }, "bad header checksum");
        yield return Case("an IPv4 fragment (more fragments)", V4, p => { p[6] = 0x20; FixIp4HeaderChecksum(p); return p; }, "fragment");
        yield return Case("an IPv4 fragment (offset)", V4, p => { p[7] = 1; FixIp4HeaderChecksum(p); return p; }, "fragment");
        yield return Case("IPv4 TCP", V4, p => { p[9] = 6; FixIp4HeaderChecksum(p); return p; }, "protocol 6, not UDP");
        yield return Case("an IPv4 multicast destination", V4, p => { p[16] = 239; FixIp4HeaderChecksum(p); return p; }, "multicast");
        yield return Case("a UDP length past the IP payload", V4, p => { p[25] = 12; return p; }, "UDP: length 12, IP carries 11 bytes");
        yield return Case("a bad IPv4 UDP checksum", V4, p => { p[^1] ^= 1; return p; }, "UDP: bad checksum");
        yield return Case("destination port 0", V4, p => { p[22] = p[23] = 0; return p; }, "destination port 0");
        yield return Case("a short IPv6 header", V6, p => p[..39], "shorter than a header");
        yield return Case("an IPv6 payload length past the packet", V6, p => p[..^1], "payload length 11 of 10 bytes");
        yield return Case("an IPv6 extension header", V6, p => { p[6] = 0; return p; }, "next header 0, not UDP");
        yield return Case("an IPv6 multicast destination", V6, p => { p[24] = 0xff; return p; }, "multicast");
        yield return Case("an IPv6 datagram without a checksum", V6, p => { p[46] = p[47] = 0; return p; }, "no checksum over IPv6");
        yield return Case("a bad IPv6 UDP checksum", V6, p => { p[^1] ^= 1; return p; }, "UDP: bad checksum");
        yield return Case("a changed IPv6 source (pseudo-header)", V6, p => { p[23] ^= 1; return p; }, "UDP: bad checksum");
    }

    [TestCaseSource(nameof(Damaged))]
    public void RejectsWithAReason(string packet, Func<byte[], byte[]> damage, string expected)
    {
        var p = damage(Hex(packet));
        Assert.That(UdpDatagram.TryParse(p, out _, out string reason), Is.False);
        Assert.That(reason, Does.Contain(expected));
    }

    [Test]
    public void WriteRefusesMixedAddressSizes()
    {
        var buffer = new byte[100];
        var e = Assert.Throws<ArgumentException>(() => UdpDatagram.Write(buffer, new byte[4], 1, new byte[16], 2, "x"u8));
        Assert.That(e!.Message, Does.Contain("addresses of 4 and 16 bytes"));
    }
}
