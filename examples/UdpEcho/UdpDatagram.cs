using System.Buffers.Binary;
using System.Net;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Examples.UdpEcho;

/// <summary>
/// One UDP datagram inside an IPv4 or IPv6 packet, as views into the packet: addresses in network
/// order (4 or 16 bytes), ports in host order, the payload.
/// </summary>
public readonly ref struct UdpDatagram
{
    /// <summary>IP protocol number of UDP.</summary>
    public const byte ProtocolUdp = 17;

    /// <summary>The IP version's family: <see cref="SocketFamily.Inet"/> or <see cref="SocketFamily.Inet6"/>.</summary>
    public SocketFamily Family { get; init; }

    /// <summary>Source address, network order.</summary>
    public ReadOnlySpan<byte> SourceAddress { get; init; }

    /// <summary>Destination address, network order.</summary>
    public ReadOnlySpan<byte> DestinationAddress { get; init; }

    /// <summary>Source port.</summary>
    public ushort SourcePort { get; init; }

    /// <summary>Destination port.</summary>
    public ushort DestinationPort { get; init; }

    /// <summary>The UDP payload.</summary>
    public ReadOnlySpan<byte> Payload { get; init; }

    /// <summary>The source as a .NET end point.</summary>
    public IPEndPoint Source => new(new IPAddress(SourceAddress), SourcePort);

    /// <summary>The destination as a .NET end point.</summary>
    public IPEndPoint Destination => new(new IPAddress(DestinationAddress), DestinationPort);

    /// <summary>
    /// Parses an IP packet as read from a TUN device. Returns false, with a one-line
    /// <paramref name="reason"/>, for anything this stack does not take: not IPv4/IPv6, truncated or
    /// inconsistent lengths, a bad IPv4 header checksum, IPv4 fragments (options are skipped), IPv6 extension
    /// headers, a protocol other than UDP, a multicast or broadcast destination, port 0, or a bad
    /// UDP checksum (mandatory for IPv6; 0 means none for IPv4).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out UdpDatagram datagram, out string reason)
    {
        datagram = default;
        if (packet.IsEmpty) { reason = "empty packet"; return false; }
        return (packet[0] >> 4) switch
        {
            4 => TryParse4(packet, out datagram, out reason),
            6 => TryParse6(packet, out datagram, out reason),
            var v => Fail($"IP version {v}", out reason),
        };
    }

    static bool Fail(string why, out string reason)
    {
        reason = why;
        return false;
    }

    static bool TryParse4(ReadOnlySpan<byte> packet, out UdpDatagram datagram, out string reason)
    {
        datagram = default;
        if (packet.Length < 20) return Fail($"IPv4: {packet.Length} bytes, shorter than a header", out reason);
        int headerLength = (packet[0] & 0xf) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (headerLength < 20 || headerLength > packet.Length) return Fail($"IPv4: header length {headerLength} of {packet.Length} bytes", out reason);
        if (total < headerLength || total > packet.Length) return Fail($"IPv4: total length {total} of {packet.Length} bytes", out reason);
        if (Checksum.Fold(Checksum.Add(0, packet[..headerLength])) != 0) return Fail("IPv4: bad header checksum", out reason);
        ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        if ((fragment & 0x3fff) != 0) return Fail("IPv4: fragment (not reassembled)", out reason);
        if (packet[9] != ProtocolUdp) return Fail($"IPv4: protocol {packet[9]}, not UDP", out reason);
        var source = packet.Slice(12, 4);
        var destination = packet.Slice(16, 4);
        if (destination[0] >= 224 || destination.SequenceEqual((ReadOnlySpan<byte>)[255, 255, 255, 255]))
            return Fail("IPv4: multicast or broadcast destination", out reason);
        var udp = packet[headerLength..total];
        if (!TryParseUdp(udp, out var sourcePort, out var destinationPort, out var payload, out reason)) return false;
        ushort sum = BinaryPrimitives.ReadUInt16BigEndian(udp[6..]);
        if (sum != 0 && Checksum.Fold(Checksum.PseudoHeader(source, destination, udp.Length) + Checksum.Add(0, udp)) != 0)
            return Fail("UDP: bad checksum", out reason);
        datagram = new UdpDatagram
        {
            Family = SocketFamily.Inet, SourceAddress = source, DestinationAddress = destination,
            SourcePort = sourcePort, DestinationPort = destinationPort, Payload = payload,
        };
        return true;
    }

    static bool TryParse6(ReadOnlySpan<byte> packet, out UdpDatagram datagram, out string reason)
    {
        datagram = default;
        if (packet.Length < 40) return Fail($"IPv6: {packet.Length} bytes, shorter than a header", out reason);
        int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        if (40 + payloadLength > packet.Length) return Fail($"IPv6: payload length {payloadLength} of {packet.Length - 40} bytes", out reason);
        if (packet[6] != ProtocolUdp) return Fail($"IPv6: next header {packet[6]}, not UDP", out reason);
        var source = packet.Slice(8, 16);
        var destination = packet.Slice(24, 16);
        if (destination[0] == 0xff) return Fail("IPv6: multicast destination", out reason);
        var udp = packet.Slice(40, payloadLength);
        if (!TryParseUdp(udp, out var sourcePort, out var destinationPort, out var payload, out reason)) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(udp[6..]) == 0) return Fail("UDP: no checksum over IPv6", out reason);
        if (Checksum.Fold(Checksum.PseudoHeader(source, destination, udp.Length) + Checksum.Add(0, udp)) != 0)
            return Fail("UDP: bad checksum", out reason);
        datagram = new UdpDatagram
        {
            Family = SocketFamily.Inet6, SourceAddress = source, DestinationAddress = destination,
            SourcePort = sourcePort, DestinationPort = destinationPort, Payload = payload,
        };
        return true;
    }

    // udp: the bytes the IP header says belong to the transport; the UDP length may not exceed them.
    static bool TryParseUdp(ReadOnlySpan<byte> udp, out ushort sourcePort, out ushort destinationPort, out ReadOnlySpan<byte> payload, out string reason)
    {
        sourcePort = destinationPort = 0;
        payload = default;
        if (udp.Length < 8) return Fail($"UDP: {udp.Length} bytes, shorter than a header", out reason);
        int length = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
        if (length < 8 || length != udp.Length) return Fail($"UDP: length {length}, IP carries {udp.Length} bytes", out reason);
        sourcePort = BinaryPrimitives.ReadUInt16BigEndian(udp);
        destinationPort = BinaryPrimitives.ReadUInt16BigEndian(udp[2..]);
        if (destinationPort == 0) return Fail("UDP: destination port 0", out reason);
        payload = udp[8..length];
        reason = "";
        return true;
    }

    /// <summary>
    /// Writes a complete IP packet (IPv4 when the addresses are 4 bytes, IPv6 when 16) carrying one UDP
    /// datagram, with the IPv4 header checksum and the UDP checksum filled in; returns its length.
    /// </summary>
    /// <exception cref="ArgumentException">Address sizes differ or are neither 4 nor 16, or the packet would exceed 65,535 bytes or <paramref name="destination"/>.</exception>
    public static int Write(Span<byte> destination, ReadOnlySpan<byte> sourceAddress, ushort sourcePort,
        ReadOnlySpan<byte> destinationAddress, ushort destinationPort, ReadOnlySpan<byte> payload, ushort identification = 0)
    {
        if (sourceAddress.Length != destinationAddress.Length || sourceAddress.Length is not (4 or 16))
            throw new ArgumentException($"addresses of {sourceAddress.Length} and {destinationAddress.Length} bytes: both must be 4 (IPv4) or 16 (IPv6)");
        bool v4 = sourceAddress.Length == 4;
        int ipHeader = v4 ? 20 : 40;
        int udpLength = 8 + payload.Length;
        int total = ipHeader + udpLength;
        if (udpLength > 0xffff || (v4 && total > 0xffff) || total > destination.Length)
            throw new ArgumentException($"a {payload.Length}-byte payload does not fit in one {(v4 ? "IPv4" : "IPv6")} packet of at most {Math.Min(destination.Length, 0xffff)} bytes");
        var ip = destination[..ipHeader];
        ip.Clear();
        if (v4)
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)total);
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], identification);
            BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000); // don't fragment
            ip[8] = 64;
            ip[9] = ProtocolUdp;
            sourceAddress.CopyTo(ip[12..]);
            destinationAddress.CopyTo(ip[16..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Fold(Checksum.Add(0, ip)));
        }
        else
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)udpLength);
            ip[6] = ProtocolUdp;
            ip[7] = 64;
            sourceAddress.CopyTo(ip[8..]);
            destinationAddress.CopyTo(ip[24..]);
        }
        var udp = destination.Slice(ipHeader, udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0);
        payload.CopyTo(udp[8..]);
        ushort sum = Checksum.Fold(Checksum.PseudoHeader(sourceAddress, destinationAddress, udpLength) + Checksum.Add(0, udp));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], sum == 0 ? (ushort)0xffff : sum); // 0 would mean "no checksum"
        return total;
    }
}

/// <summary>The Internet checksum (RFC 1071): a ones'-complement sum of 16-bit big-endian words.</summary>
public static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to a running 32-bit-or-wider sum (an odd last byte is padded with 0).</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (ulong)data[i] << 8;
        return sum;
    }

    /// <summary>The UDP pseudo-header's sum: addresses, protocol and UDP length (RFC 768, RFC 8200 8.1).</summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, int udpLength) =>
        Add(Add(0, source), destination) + UdpDatagram.ProtocolUdp + (ulong)udpLength;

    /// <summary>
    /// Folds a sum to 16 bits and complements it: 0 when a received header or datagram (checksum field
    /// included) is intact; the value to store when the checksum field was 0 while summing.
    /// </summary>
    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }
}
