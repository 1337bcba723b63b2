namespace BpfJit.Runtime.Sockets;

/// <summary>What a reuseport group's selector decided for one packet.</summary>
public enum ReuseportAction
{
    /// <summary>No choice: the group's hash picks a member.</summary>
    Hash,
    /// <summary>Use <see cref="ReuseportDecision.Socket"/>.</summary>
    Select,
    /// <summary>Drop: the lookup fails with ECONNREFUSED.</summary>
    Drop,
}

/// <summary>A selector's answer.</summary>
public readonly record struct ReuseportDecision(ReuseportAction Action, Sock? Socket = null)
{
    /// <summary>Let the hash choose.</summary>
    public static ReuseportDecision Hash => new(ReuseportAction.Hash);

    /// <summary>Drop the packet.</summary>
    public static ReuseportDecision Drop => new(ReuseportAction.Drop);

    /// <summary>Deliver to <paramref name="socket"/> (it must be a member of the group).</summary>
    public static ReuseportDecision Choose(Sock socket) => new(ReuseportAction.Select, socket);
}

/// <summary>
/// Stands in for a group's SO_ATTACH_REUSEPORT_EBPF program: sees the packet and the group, and
/// may pick a member, drop, or leave the choice to the hash.
/// </summary>
public delegate ReuseportDecision ReuseportSelector(ReuseportGroup group, in Packet packet);

/// <summary>
/// An SO_REUSEPORT group: the sockets of one protocol bound with SO_REUSEPORT to the same local
/// address and port, of the same family, with the same IPV6_V6ONLY and bound device at bind (as Linux's
/// <c>inet_reuseport_add_sock</c> requires). Selection follows <c>reuseport_select_sock</c>: the group's
/// selector when it has one, otherwise a hash of the 4-tuple over the members, skipping connected ones
/// (<c>reuseport_select_sock_by_hash</c>). A member bound to another device after it joined is skipped for
/// packets from other interfaces: a packet never reaches a socket bound to a device it did not arrive on.
/// </summary>
public sealed class ReuseportGroup
{
    Sock[] _members = [];
    readonly object _gate = new();

    internal ReuseportGroup(SocketProtocol protocol, InetEndPoint local)
    {
        Protocol = protocol;
        Local = local;
    }

    /// <summary>The group's protocol.</summary>
    public SocketProtocol Protocol { get; }

    /// <summary>The shared bind point.</summary>
    public InetEndPoint Local { get; }

    /// <summary>The members in join order (closed sockets leave).</summary>
    public IReadOnlyList<Sock> Members => Volatile.Read(ref _members);

    /// <summary>The group's program stand-in, or null to select by hash.</summary>
    public ReuseportSelector? Selector { get; set; }

    internal void Add(Sock s)
    {
        lock (_gate) _members = [.. _members, s];
    }

    internal void Remove(Sock s)
    {
        lock (_gate) _members = _members.Where(m => m != s).ToArray();
    }

    /// <summary>
    /// Picks the member that receives <paramref name="packet"/>: null with <paramref name="dropped"/>
    /// set when the selector dropped it, null alone when no member can receive.
    /// </summary>
    public Sock? Select(in Packet packet, out bool dropped)
    {
        dropped = false;
        var members = Volatile.Read(ref _members);
        var selector = Selector;
        if (selector != null)
        {
            var d = selector(this, packet);
            if (d.Action == ReuseportAction.Drop)
            {
                dropped = true;
                return null;
            }
            if (d.Action == ReuseportAction.Select && d.Socket is { IsClosed: false } chosen && Array.IndexOf(members, chosen) >= 0
                && OnDevice(chosen, packet))
                return chosen;
        }
        int eligible = 0;
        foreach (var m in members) if (Receives(m) && OnDevice(m, packet)) eligible++;
        if (eligible == 0) return null;
        // reciprocal_scale(hash, n) over the members, walking past connected sockets.
        int n = members.Length;
        int start = (int)(((ulong)packet.Hash() * (ulong)n) >> 32);
        for (int k = 0; k < n; k++)
        {
            var m = members[(start + k) % n];
            if (Receives(m) && OnDevice(m, packet) && m.State != SockState.Connected) return m;
        }
        return null;
    }

    static bool OnDevice(Sock m, in Packet packet) => m.BoundDevice == 0 || m.BoundDevice == packet.IngressIfindex;

    bool Receives(Sock m) => m.State == (Protocol == SocketProtocol.Tcp ? SockState.Listening : SockState.Bound)
        || (Protocol == SocketProtocol.Udp && m.State == SockState.Connected);
}
