using System.Buffers.Binary;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>One classic BPF instruction, <c>struct sock_filter</c>: a 16-bit code, two 8-bit jump offsets, a 32-bit operand.</summary>
public readonly record struct SockFilter(ushort Code, byte Jt, byte Jf, uint K)
{
    /// <summary>The 8-byte wire form (<c>{u16 code; u8 jt; u8 jf; u32 k}</c>, host byte order).</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, Code);
        destination[2] = Jt;
        destination[3] = Jf;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], K);
    }
}

/// <summary>
/// A classic BPF program as <c>SO_ATTACH_REUSEPORT_CBPF</c> takes it: checked at construction as the kernel's
/// <c>bpf_check_classic</c> does (any failure is -EINVAL with the instruction's index), and run by a small classic
/// interpreter on the packet a reuseport selection sees (<see cref="Run"/>): its return value is the index of the
/// member that receives the packet. Immutable; it holds no maps, so a group may drop it at any time.
/// </summary>
public sealed class ClassicFilter
{
    /// <summary><c>BPF_MAXINSNS</c>: the longest classic program.</summary>
    public const int MaxInstructions = 4096;

    /// <summary><c>BPF_MEMWORDS</c>: the scratch words M[0..15].</summary>
    public const int MemoryWords = 16;

    readonly SockFilter[] _code;

    /// <summary>Checks <paramref name="code"/> (<c>bpf_check_basics_ok</c>, <c>bpf_check_classic</c>); -EINVAL (<see cref="SocketErrorException"/>) naming the first bad instruction.</summary>
    public ClassicFilter(IEnumerable<SockFilter> code)
    {
        ArgumentNullException.ThrowIfNull(code);
        _code = [.. code];
        ClassicCheck.Check(_code);
    }

    /// <summary>Decodes the 8-byte <c>struct sock_filter</c> records of <paramref name="bytes"/> (<c>struct sock_fprog</c>'s array) and checks them.</summary>
    public static ClassicFilter Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % 8 != 0) throw new SocketErrorException(Errno.EINVAL, $"classic BPF: {bytes.Length} bytes is not a whole number of 8-byte instructions");
        var code = new SockFilter[bytes.Length / 8];
        for (int i = 0; i < code.Length; i++)
        {
            var r = bytes.Slice(i * 8, 8);
            code[i] = new SockFilter(BinaryPrimitives.ReadUInt16LittleEndian(r), r[2], r[3], BinaryPrimitives.ReadUInt32LittleEndian(r[4..]));
        }
        return new ClassicFilter(code);
    }

    /// <summary>
    /// Parses the decimal text form <c>tcpdump -ddd</c> prints and <c>xt_bpf</c> / <c>tc ... bytecode</c> take: the
    /// instruction count, then one <c>code jt jf k</c> per instruction, separated by newlines or commas (blank lines and
    /// <c>#</c> comments to the end of a line are skipped); <see cref="FormatException"/> naming the line for text that is not that form, then
    /// the kernel's check (-EINVAL, <see cref="SocketErrorException"/>).
    /// </summary>
    public static ClassicFilter Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // A comment runs to the end of its line (commas in it included); then each comma separates records.
        var records = text.Split('\n')
            .SelectMany((line, i) => line.Split('#')[0].Split(',').Select(r => (Text: r.Trim(), Line: i + 1)))
            .Where(r => r.Text.Length > 0)
            .ToArray();
        if (records.Length == 0) throw new FormatException("classic BPF text: empty (expected the instruction count, then 'code jt jf k' per instruction)");
        if (!uint.TryParse(records[0].Text, Plain, Invariant, out uint count))
            throw new FormatException($"classic BPF text, line {records[0].Line}: '{records[0].Text}' is not the instruction count");
        if (count != records.Length - 1)
            throw new FormatException($"classic BPF text: the count says {count} instruction(s), {records.Length - 1} follow");
        var code = new SockFilter[count];
        for (int i = 0; i < code.Length; i++)
        {
            var (line, at) = records[i + 1];
            var f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 4 || !ushort.TryParse(f[0], Plain, Invariant, out ushort op) || !byte.TryParse(f[1], Plain, Invariant, out byte jt)
                || !byte.TryParse(f[2], Plain, Invariant, out byte jf) || !TryK(f[3], out uint k))
                throw new FormatException($"classic BPF text, line {at}: '{line}' is not 'code jt jf k' (decimal: u16, u8, u8, u32)");
            code[i] = new SockFilter(op, jt, jf, k);
        }
        return new ClassicFilter(code);
    }

    const System.Globalization.NumberStyles Plain = System.Globalization.NumberStyles.None;
    static readonly System.Globalization.CultureInfo Invariant = System.Globalization.CultureInfo.InvariantCulture;

    // k as tcpdump prints it (unsigned), or as a negative number for the SKF_*_OFF offsets some tools write signed.
    static bool TryK(string text, out uint k)
    {
        if (uint.TryParse(text, Plain, Invariant, out k)) return true;
        if (!int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, Invariant, out int signed)) return false;
        k = unchecked((uint)signed);
        return true;
    }

    /// <summary>The instructions.</summary>
    public IReadOnlyList<SockFilter> Code => _code;

    /// <summary>
    /// <c>run_bpf_filter</c>: runs the program on <paramref name="packet"/> with the data advanced past the transport
    /// header (the kernel pulls <c>sizeof(struct udphdr)</c> for UDP, the TCP header's <c>doff * 4</c> for TCP), so
    /// absolute loads count from the payload, <c>len</c> is the payload's length, and <c>SKF_NET_OFF</c> /
    /// <c>SKF_LL_OFF</c> loads read the IP and Ethernet headers the runtime builds in front. Returns the filter's
    /// return value (0 after a load outside the packet or a division by X = 0, as classic BPF), or null when the
    /// packet is shorter than its transport header (the pull fails; the group then selects by hash).
    /// <paramref name="hash"/> is what <c>SKF_AD_RXHASH</c> reads for TCP.
    /// </summary>
    public uint? Run(in Packet packet, uint hash)
    {
        scoped ReadOnlySpan<byte> transport = packet.Bytes.Span;
        Span<byte> built = stackalloc byte[20];
        if (transport.IsEmpty)
        {
            SkReuseportContext.BuildTransport(packet, built);
            transport = packet.Protocol == SocketProtocol.Udp ? built[..8] : built;
        }
        bool v4 = packet.Family == SocketFamily.Inet;
        int ipLength = v4 ? 20 : 40;
        int headerLength = packet.Protocol == SocketProtocol.Udp ? 8 : transport.Length >= 13 ? (transport[12] >> 4) * 4 : 20;
        if (transport.Length < headerLength) return null;
        int frameLength = 14 + ipLength + transport.Length;
        byte[]? rented = null;
        Span<byte> frame = frameLength <= 512 ? stackalloc byte[frameLength]
            : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(frameLength)).AsSpan(0, frameLength);
        try
        {
            SkReuseportContext.WriteEthernet(frame[..14], v4);
            if (v4) SkReuseportContext.WriteIp4(frame.Slice(14, 20), packet, transport.Length);
            else SkReuseportContext.WriteIp6(frame.Slice(14, 40), packet, transport.Length);
            transport.CopyTo(frame[(14 + ipLength)..]);
            var skb = new ClassicSkb(frame, 14, 14 + ipLength + headerLength, packet, v4, hash);
            return ClassicInterpreter.Run(_code, skb);
        }
        finally
        {
            if (rented != null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>One instruction per line, as <c>{ code, jt, jf, k }</c>.</summary>
    public override string ToString() => string.Join('\n', _code.Select(i => $"{{ 0x{i.Code:x2}, {i.Jt}, {i.Jf}, 0x{i.K:x8} }}"));
}

/// <summary>The packet a classic filter reads: the whole frame, where the network header and the (pulled) data start, and the packet's metadata.</summary>
readonly ref struct ClassicSkb(ReadOnlySpan<byte> frame, int network, int data, in Packet packet, bool v4, uint hash)
{
    public readonly ReadOnlySpan<byte> Frame = frame;
    public readonly int Network = network;
    public readonly int Data = data;
    public readonly int Ifindex = packet.IngressIfindex;
    public readonly bool Tcp = packet.Protocol == SocketProtocol.Tcp;
    public readonly bool V4 = v4;
    public readonly uint Hash = hash;

    /// <summary><c>skb-&gt;len</c> after the pull: the payload's length.</summary>
    public int Length => Frame.Length - Data;
}
