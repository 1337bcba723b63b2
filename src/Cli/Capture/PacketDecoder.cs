using System.Buffers.Binary;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Capture;

/// <summary>What a captured packet means to a socket lookup: a lookup to run, or why there is none.</summary>
/// <param name="Packet">The lookup, when the packet is a TCP SYN or a UDP datagram.</param>
/// <param name="SkipReason">Why no lookup runs (not IP, a TCP segment without SYN, a later fragment...).</param>
public readonly record struct DecodedPacket(Packet? Packet, string? SkipReason);

/// <summary>
/// Decodes link, IPv4/IPv6 and TCP/UDP headers with span reads, as far as a lookup needs: addresses,
/// ports and the TCP flags. A header that is cut short or inconsistent is a <see cref="FormatException"/>
/// (the caller names the file and packet); a packet a listener lookup would not see is skipped.
/// </summary>
public static class PacketDecoder
{
    const int LinkNull = 0, LinkEthernet = 1, LinkRaw = 101, LinkLinuxSll = 113, LinkIpv4 = 228, LinkIpv6 = 229, LinkLinuxSll2 = 276;

    /// <summary>Decodes <paramref name="frame"/> of link type <paramref name="linkType"/>; <paramref name="ifindex"/> becomes the lookup's ingress_ifindex.</summary>
    public static DecodedPacket Decode(int linkType, ReadOnlySpan<byte> frame, int ifindex)
    {
        int ethertype;
        ReadOnlySpan<byte> ip;
        switch (linkType)
        {
            case LinkEthernet:
                {
                    Need(frame, 14, "Ethernet header");
                    int at = 12;
                    ethertype = BinaryPrimitives.ReadUInt16BigEndian(frame[at..]);
                    while (ethertype is 0x8100 or 0x88A8) // VLAN tags
                    {
                        at += 4;
                        Need(frame, at + 2, "VLAN tag");
                        ethertype = BinaryPrimitives.ReadUInt16BigEndian(frame[at..]);
                    }
                    ip = frame[(at + 2)..];
                    break;
                }
            case LinkLinuxSll:
                Need(frame, 16, "Linux cooked header");
                ethertype = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]);
                ip = frame[16..];
                break;
            case LinkLinuxSll2:
                Need(frame, 20, "Linux cooked v2 header");
                ethertype = BinaryPrimitives.ReadUInt16BigEndian(frame);
                ip = frame[20..];
                break;
            case LinkNull:
                {
                    Need(frame, 4, "loopback header");
                    uint family = BinaryPrimitives.ReadUInt32LittleEndian(frame);
                    if (family > 0xFFFF) family = BinaryPrimitives.ReverseEndianness(family); // written in the capturing host's order
                    ethertype = family == 2 ? 0x0800 : family is 10 or 24 or 28 or 30 ? 0x86DD : -1;
                    ip = frame[4..];
                    break;
                }
            case LinkRaw or LinkIpv4 or LinkIpv6:
                Need(frame, 1, "IP header");
                ethertype = (frame[0] >> 4) switch { 4 => 0x0800, 6 => 0x86DD, _ => throw new FormatException($"IP version {frame[0] >> 4} in a raw IP frame") };
                ip = frame;
                break;
            default:
                return new DecodedPacket(null, $"link type {linkType} is not supported (Ethernet, raw IP, Linux cooked, loopback)");
        }
        return ethertype switch
        {
            0x0800 => Ipv4(ip, ifindex),
            0x86DD => Ipv6(ip, ifindex),
            _ => new DecodedPacket(null, ethertype < 0 ? "not IP" : $"ethertype 0x{ethertype:x4} is not IP"),
        };
    }

    static void Need(ReadOnlySpan<byte> span, int length, string what)
    {
        if (span.Length < length) throw new FormatException($"{what} cut short ({span.Length} of {length} bytes)");
    }

    static DecodedPacket Ipv4(ReadOnlySpan<byte> ip, int ifindex)
    {
        Need(ip, 20, "IPv4 header");
        if (ip[0] >> 4 != 4) throw new FormatException($"IPv4 header has version {ip[0] >> 4}");
        int headerLength = (ip[0] & 0xF) * 4;
        if (headerLength < 20) throw new FormatException($"IPv4 header length {headerLength} is less than 20");
        Need(ip, headerLength, "IPv4 header with options");
        if ((BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF) != 0) return new DecodedPacket(null, "IPv4 fragment after the first");
        var from = InetAddress.FromIp4Raw(BinaryPrimitives.ReadUInt32LittleEndian(ip[12..]));
        var to = InetAddress.FromIp4Raw(BinaryPrimitives.ReadUInt32LittleEndian(ip[16..]));
        return Transport(ip[9], ip[headerLength..], SocketFamily.Inet, from, to, ifindex);
    }

    static DecodedPacket Ipv6(ReadOnlySpan<byte> ip, int ifindex)
    {
        Need(ip, 40, "IPv6 header");
        if (ip[0] >> 4 != 6) throw new FormatException($"IPv6 header has version {ip[0] >> 4}");
        var from = InetAddress.FromBytes(ip.Slice(8, 16));
        var to = InetAddress.FromBytes(ip.Slice(24, 16));
        int next = ip[6];
        var rest = ip[40..];
        while (next is 0 or 43 or 44 or 60) // hop-by-hop, routing, fragment, destination options
        {
            Need(rest, 8, "IPv6 extension header");
            if (next == 44 && (BinaryPrimitives.ReadUInt16BigEndian(rest[2..]) & 0xFFF8) != 0)
                return new DecodedPacket(null, "IPv6 fragment after the first");
            int length = next == 44 ? 8 : (rest[1] + 1) * 8;
            Need(rest, length, "IPv6 extension header");
            next = rest[0];
            rest = rest[length..];
        }
        return Transport(next, rest, SocketFamily.Inet6, from, to, ifindex);
    }

    static DecodedPacket Transport(int protocol, ReadOnlySpan<byte> l4, SocketFamily family, InetAddress from, InetAddress to, int ifindex)
    {
        SocketProtocol proto;
        switch (protocol)
        {
            case 6:
                Need(l4, 14, "TCP header");
                byte flags = l4[13];
                bool syn = (flags & 0x02) != 0, ack = (flags & 0x10) != 0;
                if (!syn || ack) return new DecodedPacket(null, syn ? "TCP SYN-ACK (no listener lookup)" : "TCP segment without SYN (no listener lookup)");
                proto = SocketProtocol.Tcp;
                break;
            case 17:
                Need(l4, 8, "UDP header");
                proto = SocketProtocol.Udp;
                break;
            default:
                return new DecodedPacket(null, $"IP protocol {protocol} is neither TCP nor UDP");
        }
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(l4), dport = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
        // The transport header and payload as captured (up to the snapshot length): what a reuseport group's program reads.
        return new DecodedPacket(new Packet(proto, new InetEndPoint(family, from, sport), new InetEndPoint(family, to, dport), ifindex)
        {
            Bytes = l4.ToArray(),
        }, null);
    }
}
