using System.Buffers.Binary;
using BpfJit.Frontend;

namespace BpfJit.Cli.Capture;

/// <summary>A capture file that cannot be read: the message names the file, the packet or block, and what is wrong.</summary>
public sealed class CaptureFormatException(string message) : BpfException(message);

/// <summary>One captured packet: its 1-based number in the file, the link type of its interface, and its bytes.</summary>
/// <param name="Number">1-based packet number, as Wireshark numbers frames.</param>
/// <param name="LinkType">The LINKTYPE_ value of the interface (1 Ethernet, 101 raw IP, 113 Linux cooked...).</param>
/// <param name="Interface">The pcapng interface id (0 for pcap).</param>
/// <param name="Data">The captured bytes (possibly cut short by the snap length).</param>
public readonly record struct CapturedPacket(int Number, int LinkType, int Interface, ReadOnlyMemory<byte> Data);

/// <summary>
/// Reads classic pcap (microsecond or nanosecond, either byte order) and pcapng (section header,
/// interface description, enhanced/simple/obsolete packet blocks; other blocks skipped) files.
/// The whole file is read into memory and sliced: captures given to <c>replay</c> are small.
/// </summary>
public static class CaptureReader
{
    /// <summary>
    /// Reads the packets of <paramref name="path"/>. A file that is not a capture at all throws
    /// <see cref="CaptureFormatException"/>; a capture damaged part-way (cut short, a bad block) returns the
    /// packets before the damage and the error in <c>Damage</c>, so the caller can report both.
    /// </summary>
    public static (string Format, List<CapturedPacket> Packets, CaptureFormatException? Damage) Read(string path)
    {
        byte[] bytes = InputFile.ReadBytes(path, InputFile.MaxCaptureBytes, "capture");
        if (bytes.Length < 4) throw new CaptureFormatException($"{path}: {bytes.Length} bytes is too short for a capture file");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        string format = magic switch
        {
            0x0A0D0D0A => "pcapng",
            0xA1B2C3D4 or 0xD4C3B2A1 or 0xA1B23C4D or 0x4D3CB2A1 => "pcap",
            _ => throw new CaptureFormatException($"{path}: not a pcap or pcapng file (magic 0x{magic:x8})"),
        };
        var packets = new List<CapturedPacket>();
        try
        {
            if (format == "pcapng") ReadPcapng(path, bytes, packets);
            else ReadPcap(path, bytes, packets);
            return (format, packets, null);
        }
        catch (CaptureFormatException e)
        {
            return (format, packets, e);
        }
    }

    static void ReadPcap(string path, byte[] b, List<CapturedPacket> packets)
    {
        if (b.Length < 24) throw new CaptureFormatException($"{path}: pcap header: {b.Length} bytes, need 24");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(b);
        bool big = magic is 0xD4C3B2A1 or 0x4D3CB2A1;
        uint U32(int at) => big ? BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(at)) : BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at));
        int linkType = (int)(U32(20) & 0x0FFFFFFF); // the top bits carry the FCS length
        int at = 24;
        while (at < b.Length)
        {
            int number = packets.Count + 1;
            if (b.Length - at < 16)
                throw new CaptureFormatException($"{path}: packet {number} (byte {at}): record header cut short ({b.Length - at} of 16 bytes)");
            uint caplen = U32(at + 8);
            if (caplen > b.Length - at - 16)
                throw new CaptureFormatException($"{path}: packet {number} (byte {at}): captured length {caplen} runs past the end of the file ({b.Length - at - 16} bytes left)");
            packets.Add(new CapturedPacket(number, linkType, 0, b.AsMemory(at + 16, (int)caplen)));
            at += 16 + (int)caplen;
        }
        return;
    }

    static void ReadPcapng(string path, byte[] b, List<CapturedPacket> packets)
    {
        var linkTypes = new List<int>();
        bool big = false;
        int at = 0;
        while (at < b.Length)
        {
            if (b.Length - at < 12) throw new CaptureFormatException($"{path}: block at byte {at}: cut short ({b.Length - at} bytes)");
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at));
            if (type == 0x0A0D0D0A)
            {
                uint order = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at + 8));
                big = order switch
                {
                    0x1A2B3C4D => false,
                    0x4D3C2B1A => true,
                    _ => throw new CaptureFormatException($"{path}: section header at byte {at}: bad byte-order magic 0x{order:x8}"),
                };
                linkTypes.Clear(); // interface ids are per section
            }
            else if (at == 0)
            {
                throw new CaptureFormatException($"{path}: pcapng file does not start with a section header block");
            }
            uint U32(int o) => big ? BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(o));
            ushort U16(int o) => big ? BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(o));
            type = U32(at);
            uint length = U32(at + 4);
            if (length < 12 || length % 4 != 0 || length > b.Length - at)
                throw new CaptureFormatException($"{path}: block at byte {at} (type 0x{type:x}): bad total length {length} ({b.Length - at} bytes left)");
            if (U32(at + (int)length - 4) != length)
                throw new CaptureFormatException($"{path}: block at byte {at} (type 0x{type:x}): trailing length differs from {length}");
            int body = at + 8, bodyLength = (int)length - 12;
            string Where() => $"{path}: packet {packets.Count + 1} (block at byte {at})";
            switch (type)
            {
                case 1: // interface description
                    if (bodyLength < 8) throw new CaptureFormatException($"{path}: interface description at byte {at}: body of {bodyLength} bytes, need 8");
                    linkTypes.Add(U16(body));
                    break;
                case 6 or 2: // enhanced packet, obsolete packet
                    {
                        if (bodyLength < 20) throw new CaptureFormatException($"{Where()}: packet block body of {bodyLength} bytes, need 20");
                        int iface = type == 6 ? (int)U32(body) : U16(body);
                        uint caplen = U32(body + 12);
                        if (caplen > bodyLength - 20) throw new CaptureFormatException($"{Where()}: captured length {caplen} runs past the block ({bodyLength - 20} bytes)");
                        if (iface >= linkTypes.Count) throw new CaptureFormatException($"{Where()}: interface {iface} is not described (the section has {linkTypes.Count})");
                        packets.Add(new CapturedPacket(packets.Count + 1, linkTypes[iface], iface, b.AsMemory(body + 20, (int)caplen)));
                        break;
                    }
                case 3: // simple packet: interface 0, captured length = what fits
                    {
                        if (bodyLength < 4) throw new CaptureFormatException($"{Where()}: simple packet block body of {bodyLength} bytes, need 4");
                        if (linkTypes.Count == 0) throw new CaptureFormatException($"{Where()}: simple packet before any interface description");
                        int caplen = (int)Math.Min(U32(body), (uint)(bodyLength - 4));
                        packets.Add(new CapturedPacket(packets.Count + 1, linkTypes[0], 0, b.AsMemory(body + 4, caplen)));
                        break;
                    }
            }
            at += (int)length;
        }
        return;
    }
}
