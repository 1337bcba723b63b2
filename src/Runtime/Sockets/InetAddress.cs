using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace BpfJit.Runtime.Sockets;

/// <summary>The address families SK_LOOKUP knows (values of <c>sa_family_t</c>).</summary>
public enum SocketFamily : ushort
{
    /// <summary>IPv4.</summary>
    Inet = 2,
    /// <summary>IPv6.</summary>
    Inet6 = 10,
}

/// <summary>The transport protocols SK_LOOKUP runs for (IPPROTO_* values).</summary>
public enum SocketProtocol : ushort
{
    /// <summary>TCP.</summary>
    Tcp = 6,
    /// <summary>UDP.</summary>
    Udp = 17,
}

/// <summary>
/// An IP address as 16 network-order bytes, read as a big-endian <see cref="UInt128"/> (<see cref="Bits"/>: most
/// significant byte first). IPv4 addresses are held in their v4-mapped form <c>::ffff:a.b.c.d</c>, so a dual-stack
/// IPv6 socket's address compares directly with an IPv4 packet's.
/// </summary>
// Stored as two ulongs, not a UInt128 field: crossgen2 precompiles no method that touches a type holding UInt128 (its layout
// is not fixed across runtimes), and every socket, packet and scenario method holds an InetAddress; they were left to RyuJIT
// at a process's first use (docs/perf.md, "Cold start").
public readonly record struct InetAddress
{
    const ulong MappedPrefixLow = 0xffffUL << 32;
    readonly ulong _high, _low;

    InetAddress(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    /// <summary>Builds from the 16 network-order bytes read as a big-endian number.</summary>
    public InetAddress(UInt128 Bits) : this((ulong)(Bits >> 64), (ulong)Bits) { }

    /// <summary>The 16 network-order bytes read as a big-endian number.</summary>
    public UInt128 Bits
    {
        get => new(_high, _low);
        init
        {
            _high = (ulong)(value >> 64);
            _low = (ulong)value;
        }
    }

    /// <summary>Deconstructs into <see cref="Bits"/>.</summary>
    public void Deconstruct(out UInt128 Bits) => Bits = this.Bits;

    /// <summary>The first 8 network-order bytes, big-endian (the high half of <see cref="Bits"/>).</summary>
    internal ulong High => _high;

    /// <summary>The last 8 network-order bytes, big-endian (the low half of <see cref="Bits"/>).</summary>
    internal ulong Low => _low;

    /// <summary>The IPv6 unspecified address <c>::</c>.</summary>
    public static InetAddress Any6 => default;

    /// <summary>The IPv4 unspecified address 0.0.0.0 (as <c>::ffff:0.0.0.0</c>).</summary>
    public static InetAddress Any4 => new(0, MappedPrefixLow);

    /// <summary>True for a v4-mapped address (every IPv4 address).</summary>
    public bool IsV4Mapped => _high == 0 && (_low >> 32) == 0xffff;

    /// <summary>True for 0.0.0.0 or ::.</summary>
    public bool IsAny => _high == 0 && (_low == 0 || _low == MappedPrefixLow);

    /// <summary>The IPv4 address in network byte order as the little-endian u32 a program loads (0 unless v4-mapped).</summary>
    public uint Ip4Raw => IsV4Mapped ? BinaryPrimitives.ReverseEndianness((uint)_low) : 0;

    /// <summary>Builds from a .NET address (IPv4 becomes v4-mapped).</summary>
    public static InetAddress From(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> b = stackalloc byte[16];
        if (address.AddressFamily == AddressFamily.InterNetwork) address = address.MapToIPv6();
        address.TryWriteBytes(b, out _);
        return FromBytes(b);
    }

    /// <summary>Builds from 16 network-order bytes.</summary>
    public static InetAddress FromBytes(ReadOnlySpan<byte> bytes16) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(bytes16), BinaryPrimitives.ReadUInt64BigEndian(bytes16[8..16]));

    /// <summary>Builds an IPv4 address from its 4 network-order bytes read as a little-endian u32 (a program's view).</summary>
    public static InetAddress FromIp4Raw(uint raw) => new(0, MappedPrefixLow | BinaryPrimitives.ReverseEndianness(raw));

    /// <summary>Writes the 16 network-order bytes.</summary>
    public void WriteBytes(Span<byte> bytes16)
    {
        BinaryPrimitives.WriteUInt64BigEndian(bytes16, _high);
        BinaryPrimitives.WriteUInt64BigEndian(bytes16[8..16], _low);
    }

    /// <summary>The .NET address: IPv4 when <paramref name="family"/> is <see cref="SocketFamily.Inet"/>.</summary>
    public IPAddress ToIPAddress(SocketFamily family)
    {
        Span<byte> b = stackalloc byte[16];
        WriteBytes(b);
        var v6 = new IPAddress(b);
        return family == SocketFamily.Inet ? v6.MapToIPv4() : v6;
    }

    /// <summary>Formats as the family spells it (<c>127.0.0.1</c>, <c>fd00::1</c>).</summary>
    public string ToString(SocketFamily family) => ToIPAddress(family).ToString();
}

/// <summary>An address family, address and port: one end of a packet or a socket's bind point.</summary>
public readonly record struct InetEndPoint(SocketFamily Family, InetAddress Address, ushort Port)
{
    /// <summary>Builds from a .NET end point.</summary>
    public static InetEndPoint From(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var family = endPoint.AddressFamily == AddressFamily.InterNetwork ? SocketFamily.Inet : SocketFamily.Inet6;
        return new InetEndPoint(family, InetAddress.From(endPoint.Address), checked((ushort)endPoint.Port));
    }

    /// <summary>Parses <c>1.2.3.4:80</c> or <c>[fd00::1]:80</c>; false when malformed.</summary>
    public static bool TryParse(string text, out InetEndPoint endPoint)
    {
        endPoint = default;
        if (string.IsNullOrEmpty(text)) return false;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0) return false;
            if (!IPAddress.TryParse(text[1..close], out var a6) || a6.AddressFamily != AddressFamily.InterNetworkV6) return false;
            if (!TryPort(text[(close + 2)..], out ushort p6)) return false;
            endPoint = new InetEndPoint(SocketFamily.Inet6, InetAddress.From(a6), p6);
            return true;
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || text.IndexOf(':') != colon) return false;
        string host = text[..colon];
        if (host.Count(c => c == '.') != 3 || !IPAddress.TryParse(host, out var a4) || a4.AddressFamily != AddressFamily.InterNetwork) return false;
        if (!TryPort(text[(colon + 1)..], out ushort p4)) return false;
        endPoint = new InetEndPoint(SocketFamily.Inet, InetAddress.From(a4), p4);
        return true;
    }

    static bool TryPort(string s, out ushort port) =>
        ushort.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port);

    /// <summary><c>127.0.0.1:7007</c> or <c>[fd00::1]:7007</c>.</summary>
    public override string ToString() =>
        Family == SocketFamily.Inet ? $"{Address.ToString(Family)}:{Port}" : $"[{Address.ToString(Family)}]:{Port}";
}
