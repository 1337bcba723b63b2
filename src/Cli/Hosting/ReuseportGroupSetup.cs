using System.Buffers.Binary;
using BpfJit.Cli.Commands;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// The reuseport group an SK_REUSEPORT program runs for in <c>run</c> and <c>bench</c>: the scenario's group bound to
/// the packet's destination, or <c>--members N</c> new members (TCP listeners or bound UDP sockets, per the packet's
/// protocol, with SO_REUSEPORT) on it. For new members, the program's REUSEPORT_SOCKARRAY, SOCKMAP and SOCKHASH maps
/// get member i at key i (as a deployment fills them); a scenario's maps are left as the scenario made them.
/// </summary>
public sealed class ReuseportGroupSetup
{
    ReuseportGroupSetup(ReuseportGroup group, Sock found)
    {
        Group = group;
        Found = found;
    }

    /// <summary>The group.</summary>
    public ReuseportGroup Group { get; }

    /// <summary>
    /// The member the lookup found (<c>ctx-&gt;sk</c>): the one the kernel's chain walk meets first, the newest (an
    /// AF_INET6 group's oldest), not the group's first in <c>socks[]</c>.
    /// </summary>
    public Sock Found { get; }

    /// <summary>The default of <c>--members</c>.</summary>
    public const int DefaultMembers = 2;

    /// <summary><c>--type</c> and <c>--hash</c>, which <c>run</c> and <c>bench</c> declare.</summary>
    public static System.CommandLine.Option[] Declare() =>
    [
        DeclareType(),
        Opt.Value("--hash", "N", "SK_REUSEPORT: the flow hash the program reads and the group falls back to (default the runtime's 4-tuple hash)"),
    ];

    /// <summary><c>--type</c> alone (<c>dump</c>, <c>cfg</c>).</summary>
    public static System.CommandLine.Option DeclareType() =>
        Opt.Value("--type", "TYPE", "the program type of a FILE (.asm, .bin): sk_lookup (default) or sk_reuseport", "sk_lookup", "sk_reuseport");

    /// <summary>The helper table of an SK_LOOKUP or SK_REUSEPORT program.</summary>
    public static BpfJit.Runtime.HelperTable Helpers(ProgramType type) =>
        type == ProgramType.SkReuseport ? BpfJit.Runtime.SkReuseport.SkReuseportHelpers.CreateTable() : BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();

    /// <summary>The program type <c>--type</c> gives a program file (SK_LOOKUP by default); a usage error with an object or a scenario.</summary>
    public static ProgramType FileType(Args args, string path)
    {
        if (!args.Has("--type")) return ProgramType.SkLookup;
        if (ProgramFiles.IsElfFile(path) || ProgramFiles.IsJsonFile(path))
            throw new UsageException("--type applies to a program file (.asm, .bin): an object's or a scenario's programs have their type");
        return SectionNames.Classify(args.Choice("--type", "sk_lookup", "sk_lookup", "sk_reuseport")).Type;
    }

    /// <summary>
    /// <paramref name="packet"/> with <c>--hash N</c> (decimal or 0x hex, a u32) as its flow hash; a usage error for a
    /// program other than SK_REUSEPORT.
    /// </summary>
    public static Packet WithHash(Args args, ProgramHost host, Packet packet)
    {
        if (args.Get("--hash") is not { } text) return packet;
        if (host.Reuseport == null) throw new UsageException("--hash applies to SK_REUSEPORT programs only");
        return packet with { FlowHash = ParseHash(text) };
    }

    /// <summary>Parses <c>--hash</c>'s value: a u32, decimal or 0x hex.</summary>
    public static uint ParseHash(string text)
    {
        bool hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        return uint.TryParse(hex ? text[2..] : text, hex ? System.Globalization.NumberStyles.AllowHexSpecifier : System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out uint hash)
            ? hash
            : throw new UsageException($"--hash must be a u32 (decimal or 0x hex), not '{text}'");
    }

    /// <summary>Parses <c>--members N</c> (1 to 256, default <see cref="DefaultMembers"/>).</summary>
    public static int Members(Args args)
    {
        string? text = args.Get("--members");
        if (text == null) return DefaultMembers;
        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 256 ? n
            : throw new UsageException($"--members must be a number of sockets from 1 to 256, not '{text}'");
    }

    /// <summary>
    /// Finds the scenario's group for <paramref name="packet"/> or makes one of <paramref name="members"/> sockets in the
    /// host's namespace, and fills the program's socket maps with new members. A map that refuses a member is a
    /// <see cref="BpfException"/> naming the map and the errno.
    /// </summary>
    public static ReuseportGroupSetup Build(ProgramHost host, in Packet packet, int members)
    {
        var program = host.Reuseport ?? throw new InvalidOperationException("not an SK_REUSEPORT program");
        if (host.Scenario != null)
        {
            var to = packet.To;
            var proto = packet.Protocol;
            var group = host.Scenario.Sockets.Values
                .Select(s => s.ReuseportGroup)
                .FirstOrDefault(g => g != null && g.Protocol == proto && g.Local.Port == to.Port && (g.BindInany || g.Local.Address.Equals(to.Address)));
            if (group != null && host.Namespace.Sockets.FirstInChain(group) is { } found) return new ReuseportGroupSetup(group, found);
        }
        var made = new Sock[members];
        for (int i = 0; i < members; i++)
        {
            var s = host.Namespace.Sockets.Create(packet.Family, packet.Protocol);
            s.Name = $"member{i}";
            s.ReusePort = true;
            s.Bind(packet.To);
            if (packet.Protocol == SocketProtocol.Tcp) s.Listen();
            made[i] = s;
        }
        if (host.Scenario == null)
        {
            foreach (var map in program.Maps)
            {
                if (map.Type is not (MapType.ReuseportSockArray or MapType.SockMap or MapType.SockHash)) continue;
                for (int i = 0; i < made.Length && i < map.MaxEntries; i++) Put(map, i, made[i]);
            }
        }
        var newGroup = made[0].ReuseportGroup!;
        return new ReuseportGroupSetup(newGroup, host.Namespace.Sockets.FirstInChain(newGroup)!);
    }

    // Member i at key i (a u32, little-endian, zero-padded to the key size); the value is the socket's cookie, the
    // runtime's stand-in for the fd userspace passes.
    static void Put(BpfMap map, int index, Sock socket)
    {
        var key = new byte[map.KeySize];
        if (key.Length >= 4) BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)index);
        else key[0] = (byte)index;
        var value = new byte[map.ValueSize];
        if (value.Length >= 8) BinaryPrimitives.WriteUInt64LittleEndian(value, socket.Cookie);
        else BinaryPrimitives.WriteUInt32LittleEndian(value, checked((uint)socket.Cookie));
        int err = map.Update(key, value, UpdateFlags.Any);
        if (err != 0)
            throw new BpfException($"map {map.Name} ({map.Type}): cannot store {socket.Name} at key {index}: {BpfJit.Runtime.Errno.Name(err)}");
    }
}
