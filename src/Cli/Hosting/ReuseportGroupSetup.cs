using System.Buffers.Binary;
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

    /// <summary>The member the lookup found (<c>ctx-&gt;sk</c>): the group's first.</summary>
    public Sock Found { get; }

    /// <summary>The default of <c>--members</c>.</summary>
    public const int DefaultMembers = 2;

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
            if (group != null && group.Members.Count > 0) return new ReuseportGroupSetup(group, group.Members[0]);
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
        return new ReuseportGroupSetup(made[0].ReuseportGroup!, made[0]);
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
