#!/usr/bin/env python3
"""Writes dispatcher.pcapng, the capture `bpfjit replay` reads in its example and its test, and with a
`.pcap` path (`make_capture.py dispatcher.pcap`) the same Ethernet packets as a classic pcap file.

Standard library only (struct): an independent writer of the pcapng format, so that the tool's
reader is checked against a file it did not write. Interface 0 is Ethernet, interface 1 raw IP.
The comment after each packet is the decision `bpfjit replay dispatcher.pcapng --scenario replay.json`
prints for it.
"""
import struct
import socket
import sys

SYN, ACK = 0x02, 0x10


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp(sport, dport, flags):
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0)


def udp(sport, dport, payload=b"hello"):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src, dst, proto, l4):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + l4


def ipv6(src, dst, proto, l4):
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)) + l4


def ether(ethertype, payload, vlan=None):
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype) + payload


def block(kind, body):
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def section_header():
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def interface(linktype):
    return block(1, struct.pack("<HHI", linktype, 0, 65535))


def packet(iface, n, data):
    ts = 1_700_000_000_000_000 + n * 1000  # microseconds
    return block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)


PACKETS = [
    (0, ether(0x0800, ipv4("10.0.0.1", "1.2.3.1", 6, tcp(50000, 80, SYN)))),           # socket spectrum (1.2.3.0/24, any port)
    (0, ether(0x0800, ipv4("10.0.0.2", "1.2.3.1", 6, tcp(50001, 443, SYN)))),          # socket nginx-ssl (1.2.3.0/24 port 443)
    (0, ether(0x0800, ipv4("1.2.3.1", "10.0.0.2", 6, tcp(443, 50001, SYN | ACK)))),    # skipped: SYN-ACK
    (0, ether(0x0800, ipv4("10.0.0.2", "1.2.3.1", 6, tcp(50001, 443, ACK)))),          # skipped: no SYN
    (0, ether(0x0800, ipv4("10.0.0.3", "1.2.3.9", 17, udp(40000, 53)))),               # socket dns (udp 1.2.3.0/24 port 53)
    (0, ether(0x0800, ipv4("10.0.0.3", "1.2.3.9", 17, udp(40000, 54)))),               # none (no UDP binding, no UDP socket)
    (0, ether(0x0800, ipv4("10.0.0.4", "5.5.5.5", 6, tcp(50002, 22, SYN)))),           # refused (5.5.5.0/24's service has no socket)
    (0, ether(0x86DD, ipv6("fd00::99", "fd00::1", 6, tcp(50003, 80, SYN)))),           # socket web6 (fd00::/64 port 80)
    (1, ipv4("10.0.0.5", "127.0.0.1", 6, tcp(50004, 9001, SYN))),                      # socket spectrum (no binding: its listener)
    (0, ether(0x0800, ipv4("10.0.0.6", "1.2.3.1", 1, b"\x08\x00\xf7\xff\x00\x00\x00\x00"))),  # skipped: ICMP
    (0, ether(0x0800, ipv4("10.0.0.6", "9.9.9.9", 6, tcp(50005, 80, SYN)), vlan=7)),  # none (no binding, no listener)
    (0, ether(0x86DD, ipv6("fd00::99", "fd00::1", 17, udp(5353, 53)))),                # none
]


def classic_pcap(path):
    # Classic pcap has one link type per file: the Ethernet packets only (interface 0).
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for n, (iface, data) in enumerate(PACKETS):
        if iface != 0:
            continue
        ts = 1_700_000_000_000_000 + n * 1000
        out += struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(data), len(data)) + data
    with open(path, "wb") as f:
        f.write(out)


def main(path):
    if path.endswith(".pcap"):
        classic_pcap(path)
        return
    out = section_header() + interface(1) + interface(101)
    for n, (iface, data) in enumerate(PACKETS):
        out += packet(iface, n, data)
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dispatcher.pcapng")
