using System.CommandLine;
using System.Globalization;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Hosting;

/// <summary>The lookup context options shared by <c>run</c> and <c>bench</c>: --proto, --from, --to, --ifindex, --payload.</summary>
public static class PacketOptions
{
    /// <summary>The option names that take a value.</summary>
    public static readonly string[] Names = ["--proto", "--from", "--to", "--ifindex", "--payload"];

    /// <summary>The declarations of <see cref="Names"/>, for a verb's options (a new set for each verb).</summary>
    public static Option[] Declare() =>
    [
        Opt.Value("--proto", "PROTO", "tcp or udp", "tcp", "udp"),
        Opt.Value("--from", "IP:PORT", "the packet's source (IPv6 as [ADDR]:PORT)"),
        Opt.Value("--to", "IP:PORT", "the packet's destination"),
        Opt.Value("--ifindex", "N", "ingress_ifindex (default 1)"),
        Opt.Value("--payload", "HEX", "the packet's payload after its TCP or UDP header, as hex bytes (what an SK_REUSEPORT program reads past the header)"),
    ];

    /// <summary>
    /// The packet the options describe; <paramref name="required"/> makes --proto, --from and --to
    /// mandatory, otherwise a TCP packet 10.0.0.1:50000 -&gt; 127.0.0.1:80 fills in what is missing.
    /// </summary>
    public static Packet Parse(Args args, bool required)
    {
        if (required)
            foreach (var name in Names.Take(3))
                if (!args.Has(name)) throw new UsageException($"{name} is required");
        var proto = args.Choice("--proto", "tcp", "tcp", "udp") == "tcp" ? SocketProtocol.Tcp : SocketProtocol.Udp;
        var from = EndPoint(args, "--from", "10.0.0.1:50000");
        var to = EndPoint(args, "--to", from.Family == SocketFamily.Inet ? "127.0.0.1:80" : "[::1]:80");
        if (from.Family != to.Family) throw new UsageException($"--from {from} and --to {to} are of different address families");
        string ifText = args.Get("--ifindex", "1")!;
        if (!int.TryParse(ifText, NumberStyles.None, CultureInfo.InvariantCulture, out int ifindex))
            throw new UsageException($"--ifindex must be a non-negative number, not '{ifText}'");
        var packet = new Packet(proto, from, to, ifindex);
        return args.Get("--payload") is { } payload ? packet.WithPayload(Payload(payload)) : packet;
    }

    /// <summary>
    /// Parses <c>--payload</c>: hex digits two per byte, optionally split by spaces or colons (<c>0d0a</c>,
    /// <c>c3:00:00:00:01</c>); at most <see cref="Packet.MaxPayload"/> bytes.
    /// </summary>
    public static byte[] Payload(string text)
    {
        string hex = text.Replace(" ", "", StringComparison.Ordinal).Replace(":", "", StringComparison.Ordinal);
        if (hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) hex = hex[2..];
        byte[] bytes;
        try { bytes = Convert.FromHexString(hex); }
        catch (FormatException) { throw new UsageException($"--payload must be hex bytes (for example c3ff0001), not '{text}'"); }
        return bytes.Length <= Packet.MaxPayload ? bytes
            : throw new UsageException($"--payload has {bytes.Length} bytes; at most {Packet.MaxPayload} fit in a packet");
    }

    static InetEndPoint EndPoint(Args args, string name, string fallback)
    {
        string text = args.Get(name, fallback)!;
        return InetEndPoint.TryParse(text, out var ep) ? ep
            : throw new UsageException($"{name} '{text}' is not IP:PORT (IPv6 as [ADDR]:PORT)");
    }

    /// <summary><c>tcp</c> or <c>udp</c>.</summary>
    public static string ProtoName(SocketProtocol p) => p == SocketProtocol.Tcp ? "tcp" : "udp";

    /// <summary><c>inet</c> or <c>inet6</c>.</summary>
    public static string FamilyName(SocketFamily f) => f == SocketFamily.Inet ? "inet" : "inet6";
}
