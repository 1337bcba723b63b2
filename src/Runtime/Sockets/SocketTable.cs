using System.Collections.Concurrent;

namespace BpfJit.Runtime.Sockets;

/// <summary>
/// The sockets of one network namespace, indexed by protocol and local port, and the regular
/// (non-BPF) lookups of the transport layer: established/connected 4-tuple matches, then listeners
/// (TCP) or unconnected bound sockets (UDP) bound exactly to the destination, then wildcard ones,
/// with SO_REUSEPORT selection inside a group. Readers take no lock: each port bucket is an
/// immutable array replaced on change.
/// </summary>
public sealed class SocketTable
{
    const int EphemeralFirst = 32768, EphemeralLast = 60999;

    // The sockets bound to each (protocol, port), as immutable snapshots that writers replace under _gate:
    // per protocol (TCP, UDP), 256 chunks of 256 ports, a chunk allocated at the first bind in it. A lookup
    // reaches its bucket with three dependent loads and no hashing.
    readonly Sock[]?[]?[][] _buckets = [new Sock[]?[]?[256], new Sock[]?[]?[256]];
    readonly ConcurrentDictionary<Sock, byte> _open = new();
    readonly Dictionary<ReuseportKey, ReuseportGroup> _groups = [];
    readonly object _gate = new();
    bool _closed;   // the namespace is disposed: no more sockets

    static int ProtocolIndex(SocketProtocol protocol) => protocol == SocketProtocol.Tcp ? 0 : protocol == SocketProtocol.Udp ? 1 : -1;

    /// <summary>The bucket of (<paramref name="protocol"/>, <paramref name="port"/>), or null when nothing is bound there.</summary>
    Sock[]? Bucket(SocketProtocol protocol, ushort port)
    {
        int p = ProtocolIndex(protocol);
        if (p < 0) return null;
        var chunk = Volatile.Read(ref _buckets[p][port >> 8]);
        return chunk == null ? null : Volatile.Read(ref chunk[port & 255]);
    }

    /// <summary>Publishes a new bucket for (<paramref name="protocol"/>, <paramref name="port"/>) (null: empty); <see cref="_gate"/> held.</summary>
    void SetBucket(SocketProtocol protocol, ushort port, Sock[]? bucket)
    {
        var chunks = _buckets[ProtocolIndex(protocol)];
        var chunk = chunks[port >> 8];
        if (chunk == null)
        {
            if (bucket == null) return;
            Volatile.Write(ref chunks[port >> 8], chunk = new Sock[]?[256]);
        }
        Volatile.Write(ref chunk[port & 255], bucket);
    }

    /// <summary>
    /// Creates an unbound socket in this namespace; -EPROTONOSUPPORT for a protocol other than TCP or UDP;
    /// <see cref="ObjectDisposedException"/> once the namespace is disposed.
    /// </summary>
    public Sock Create(SocketFamily family, SocketProtocol protocol)
    {
        if (ProtocolIndex(protocol) < 0)
            throw new SocketErrorException(Errno.EPROTONOSUPPORT, $"socket: protocol {(int)protocol} is not supported (TCP 6 or UDP 17)");
        lock (_gate)
        {
            // Under the lock that Close takes first: a socket created here is in the set Close closes, or refused.
            ObjectDisposedException.ThrowIf(_closed, this);
            var s = new Sock(this, family, protocol);
            _open[s] = 0;
            return s;
        }
    }

    /// <summary>
    /// The namespace's <c>net.ipv4.tcp_migrate_req</c> (default off): when a TCP listener in a reuseport group closes, its
    /// queued connections migrate to another listener of the group even without a migrate program
    /// (<see cref="Sock.CloseListener(IReadOnlyList{MigratingRequest})"/>).
    /// </summary>
    public bool TcpMigrateReq { get; set; }

    /// <summary>True once the namespace's disposal closed the table.</summary>
    public bool IsClosed
    {
        get { lock (_gate) return _closed; }
    }

    /// <summary>The namespace's disposal: refuses new sockets and closes every open one.</summary>
    internal void Close()
    {
        Sock[] open;
        lock (_gate)
        {
            _closed = true;
            open = [.. _open.Keys];
        }
        foreach (var s in open) s.Close();
    }

    /// <summary>Every socket of the namespace that is not closed (bound or not), in creation order.</summary>
    public IReadOnlyList<Sock> Sockets => _open.Keys.Where(s => !s.IsClosed).OrderBy(s => s.Cookie).ToArray();

    // What sockets share a reuseport group by (inet_reuseport_add_sock, udp_reuseport_add_sock): the bind point
    // (its family is the socket's), IPV6_V6ONLY and the bound device.
    readonly record struct ReuseportKey(SocketProtocol Protocol, InetEndPoint Local, bool V6Only, int BoundDevice);

    /// <summary>
    /// Binds <paramref name="s"/> (its lock held): the conflict check, the address, the bucket and the group
    /// change together under the table's lock, so a concurrent bind sees this socket with its address or not at all.
    /// </summary>
    internal void Bind(Sock s, InetEndPoint local)
    {
        lock (_gate)
        {
            if (local.Port == 0)
            {
                for (int p = EphemeralFirst; p <= EphemeralLast && local.Port == 0; p++)
                    if (Conflict(s, local with { Port = (ushort)p }) == null) local = local with { Port = (ushort)p };
                if (local.Port == 0) throw new SocketErrorException(Errno.EADDRINUSE, $"socket {s}: no free ephemeral port");
            }
            else if (Conflict(s, local) is { } other)
            {
                throw new SocketErrorException(Errno.EADDRINUSE, $"socket {s}: {local} is in use by socket {other}");
            }
            // The address first: a bind checking this bucket after the publish must see it (Conflict skips
            // members without one).
            s.Local = local;
            // The kernel's chain order, which decides which of several equal-scoring sockets a lookup meets first (the
            // member a group's program sees as ctx->sk): new sockets go to the head, SO_REUSEPORT AF_INET6 ones to the
            // tail (udp_lib_get_port; a TCP socket takes its place in the listening chain at listen, __inet_hash).
            var bucket = Bucket(s.Protocol, local.Port);
            SetBucket(s.Protocol, local.Port, bucket == null ? [s] : ChainInsert(bucket, s));
            // UDP joins its reuseport group at bind (udp_reuseport_add_sock); TCP only at listen (Listened).
            if (s.ReusePort && s.Protocol == SocketProtocol.Udp) JoinGroup(s, local);
        }
    }

    static Sock[] ChainInsert(Sock[] bucket, Sock s) => s.ReusePort && s.Family == SocketFamily.Inet6 ? [.. bucket, s] : [s, .. bucket];

    /// <summary>
    /// A TCP socket started listening (its lock held): it takes its place in the listening chain (at the head, an
    /// SO_REUSEPORT AF_INET6 one at the tail) and, with SO_REUSEPORT, joins its reuseport group, as <c>__inet_hash</c>
    /// and <c>inet_reuseport_add_sock</c> do at listen, not at bind: a bound socket that never listens is in no group,
    /// and a group's <c>socks[]</c> are in listen order.
    /// </summary>
    internal void Listened(Sock s)
    {
        lock (_gate)
        {
            if (s.Local is not { } local) return;
            // inet_csk_listen_start checks the port again (inet_csk_get_port): a socket holding a group of its own
            // (an attach before listen) now conflicts with the other SO_REUSEPORT sockets on it.
            if (s.ReuseportGroup != null && Conflict(s, local) is { } other)
                throw new SocketErrorException(Errno.EADDRINUSE, $"socket {s}: {local} is in use by socket {other} (a socket with its own reuseport group cannot share it)");
            if (Bucket(s.Protocol, local.Port) is { } bucket)
                SetBucket(s.Protocol, local.Port, ChainInsert(Array.FindAll(bucket, x => x != s), s));
            if (s.ReusePort) JoinGroup(s, local);
        }
    }

    /// <summary>
    /// <c>reuseport_add_sock</c> / <c>reuseport_alloc</c> (<see cref="_gate"/> held): <paramref name="s"/> joins the group
    /// of its bind point, or founds it. A group of its own that an attach before bind or listen gave it
    /// (<see cref="GroupOfOwn"/>) becomes the group when it founds one (the program stays); joining an existing group it
    /// would be freed, program and all, as <c>reuseport_add_sock</c> does, but the port check refuses that bind or
    /// listen first (<see cref="Conflict"/>: -EADDRINUSE).
    /// </summary>
    void JoinGroup(Sock s, InetEndPoint local)
    {
        var key = new ReuseportKey(s.Protocol, local, s.V6Only, s.BoundDevice);
        var own = s.ReuseportGroup;
        if (_groups.TryGetValue(key, out var group))
        {
            if (own != null && own != group)
            {
                own.Remove(s);
                own.Close();
            }
        }
        else
        {
            _groups[key] = group = own ?? new ReuseportGroup(s.Protocol, local);
            group.Local = local;
        }
        if (group != own) group.Add(s);
        s.ReuseportGroup = group;
    }

    /// <summary>
    /// <c>reuseport_attach_prog</c> on a socket not yet in the lookup tables (unbound, or a TCP socket that does not
    /// listen) with SO_REUSEPORT: <c>reuseport_alloc</c> gives it a group of its own to hold the program until it binds
    /// (UDP) or listens (TCP) (<see cref="JoinGroup"/>).
    /// </summary>
    internal ReuseportGroup GroupOfOwn(Sock s)
    {
        lock (_gate)
        {
            if (s.ReuseportGroup is { } have) return have;
            var group = new ReuseportGroup(s.Protocol, s.Local ?? new InetEndPoint(s.Family, s.Family == SocketFamily.Inet ? InetAddress.Any4 : InetAddress.Any6, 0));
            group.Add(s);
            s.ReuseportGroup = group;
            return group;
        }
    }

    internal void Remove(Sock s)
    {
        _open.TryRemove(s, out _);
        lock (_gate)
        {
            // A group of its own (an attach before bind or listen) ends with the socket too.
            if (s.ReuseportGroup is { } group) LeaveGroup(s, group);
            LeaveBucket(s);
        }
    }

    // Out of its port's chain (_gate held).
    void LeaveBucket(Sock s)
    {
        if (s.Local is not { } local || Bucket(s.Protocol, local.Port) is not { } old) return;
        var next = old.Where(x => x != s).ToArray();
        SetBucket(s.Protocol, local.Port, next.Length == 0 ? null : next);
    }

    /// <summary>
    /// A TCP listener stopped listening without closing (a shutdown; its lock held): as <c>inet_unhash</c> and
    /// <c>inet_put_port</c>, it leaves its reuseport group (<c>reuseport_stop_listen_sock</c>; the caller kept the closed
    /// section) and its REUSEPORT_SOCKARRAY slot, and, with <paramref name="releasePort"/> (an autobound port), its port.
    /// </summary>
    internal void Unlisten(Sock s, bool releasePort)
    {
        lock (_gate)
        {
            if (s.ReuseportGroup is { } group) LeaveGroup(s, group);
            if (releasePort) LeaveBucket(s);
        }
        LeaveReuseportArray(s);
    }

    // bpf_sk_reuseport_detach: a socket that left its group leaves its REUSEPORT_SOCKARRAY slot.
    static void LeaveReuseportArray(Sock s)
    {
        if (Volatile.Read(ref s.UserData) is SkReuseport.ReuseportSockArray array) array.Unlink(s);
    }

    /// <summary><c>reuseport_detach_sock</c> (<see cref="_gate"/> held): <paramref name="s"/> leaves its group; an emptied group ends.</summary>
    void LeaveGroup(Sock s, ReuseportGroup group)
    {
        group.Remove(s);
        s.ReuseportGroup = null;
        if (group.Members.Count != 0) return;
        // The group's end: its program goes, and so does its key.
        group.Close();
        foreach (var (key, g) in _groups)
            if (g == group)
            {
                _groups.Remove(key);
                break;
            }
    }

    /// <summary>
    /// A UDP socket connected (its lock held). A member of a reuseport group first marks the group as having connections
    /// (<c>reuseport_has_conns_set</c>), then leaves it: Linux hashes a connected socket by its 4-tuple
    /// (<c>udp_lib_hash4</c>) or rehashes one that was bound to the wildcard address (<c>udp_lib_rehash</c>), and both
    /// detach it from its group and from a REUSEPORT_SOCKARRAY (<c>bpf_sk_reuseport_detach</c>). From then on only
    /// packets of its own 4-tuple reach it; the group's program and hash choose among the others.
    /// </summary>
    internal void UdpConnected(Sock s, bool wildcardBound)
    {
        lock (_gate)
        {
            if (s.ReuseportGroup is not { } group) return;
            // A wildcard-bound socket is rehashed (and so detached) before the flag is set, which then finds no group.
            if (!wildcardBound) group.HasConns = true;
            LeaveGroup(s, group);
        }
        LeaveReuseportArray(s);
    }

    Sock? Conflict(Sock s, InetEndPoint local)
    {
        if (Bucket(s.Protocol, local.Port) is not { } bucket) return null;
        foreach (var o in bucket)
        {
            if (o == s || o.IsClosed || o.Local is not { } ol) continue;
            // inet_bind_conflict: sockets bound to two different devices never conflict.
            if (s.BoundDevice != 0 && o.BoundDevice != 0 && s.BoundDevice != o.BoundDevice) continue;
            if (!Overlap(s, local.Address, o, ol.Address)) continue;
            // SO_REUSEPORT on both shares the port, unless the binding socket already holds a reuseport group of its own
            // (an attach before bind or listen): inet_bind_conflict's reuseport_cb_ok, udp_lib_lport_inuse.
            if (s.ReusePort && o.ReusePort && s.ReuseportGroup == null) continue;
            return o;
        }
        return null;
    }

    // Two bind addresses overlap when equal, or when one is a wildcard covering the other.
    static bool Overlap(Sock a, InetAddress aa, Sock b, InetAddress ba)
    {
        if (aa == ba) return true;
        return (aa.IsAny && Covers(a, aa, b, ba)) || (ba.IsAny && Covers(b, ba, a, aa));
    }

    static bool Covers(Sock wild, InetAddress wildAddress, Sock other, InetAddress otherAddress)
    {
        if (wild.Family == SocketFamily.Inet) return otherAddress.IsV4Mapped;
        if (wildAddress.IsV4Mapped) return otherAddress.IsV4Mapped;
        return !otherAddress.IsV4Mapped || !(wild.V6Only || other.V6Only);
    }

    /// <summary>
    /// True when <paramref name="s"/> may receive a packet of <paramref name="family"/>: an IPv4
    /// packet reaches AF_INET sockets and dual-stack (not v6only) AF_INET6 sockets bound to a
    /// v4-mapped address or <c>::</c>; an IPv6 packet reaches AF_INET6 sockets not bound to a v4-mapped address.
    /// </summary>
    public static bool FamilyAccepts(Sock s, SocketFamily family)
    {
        if (s.Local is not { } local) return false;
        if (family == SocketFamily.Inet)
            return s.Family == SocketFamily.Inet || (!s.V6Only && (local.Address.IsV4Mapped || local.Address == InetAddress.Any6));
        return s.Family == SocketFamily.Inet6 && !local.Address.IsV4Mapped;
    }

    static bool AddressMatches(InetAddress bound, in Packet p, out bool exact)
    {
        exact = bound == p.To.Address;
        if (exact) return true;
        return bound.IsAny;
    }

    /// <summary>
    /// The member of <paramref name="group"/> that a lookup reaching the group meets first, which its program reads as
    /// <c>ctx-&gt;sk</c>: the first in the kernel's chain order (newest first; SO_REUSEPORT AF_INET6 sockets oldest
    /// first), null when the group has no member here.
    /// </summary>
    public Sock? FirstInChain(ReuseportGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (Bucket(group.Protocol, group.Local.Port) is not { } bucket) return null;
        foreach (var s in bucket)
            if (s.ReuseportGroup == group) return s;
        return null;
    }

    /// <summary>
    /// The established TCP connection or connected UDP socket whose 4-tuple matches
    /// <paramref name="packet"/>: programs never run for these.
    /// </summary>
    public Sock? LookupConnected(in Packet packet) => LookupConnected(BucketOf(packet), packet);

    /// <summary>
    /// The sockets bound to <paramref name="packet"/>'s protocol and destination port (an immutable snapshot),
    /// or null: a lookup fetches it once for both <see cref="LookupConnected(Sock[], in Packet)"/> and
    /// <see cref="LookupListener(Sock[], in Packet, out bool)"/>.
    /// </summary>
    internal Sock[]? BucketOf(in Packet packet) => Bucket(packet.Protocol, packet.To.Port);

    /// <summary><see cref="LookupConnected(in Packet)"/> over a bucket from <see cref="BucketOf"/>.</summary>
    internal static Sock? LookupConnected(Sock[]? bucket, in Packet packet)
    {
        if (bucket == null) return null;
        foreach (var s in bucket)
        {
            if (s.State != SockState.Connected || s.Peer is not { } peer || s.Local is not { } local) continue;
            if (!FamilyAccepts(s, packet.Family)) continue;
            if (s.BoundDevice != 0 && s.BoundDevice != packet.IngressIfindex) continue;
            if (peer.Port != packet.From.Port || peer.Address != packet.From.Address) continue;
            if (!AddressMatches(local.Address, packet, out _)) continue;
            return s;
        }
        return null;
    }

    /// <summary>
    /// The regular listener lookup: the best TCP listener (or unconnected bound UDP socket) for
    /// <paramref name="packet"/>, exact-address binds before wildcard ones, an AF_INET socket
    /// before a dual-stack one, a device-bound socket before an unbound one; then reuseport
    /// selection in the winner's group. <paramref name="refused"/> is set when a reuseport selector dropped the packet.
    /// </summary>
    public Sock? LookupListener(in Packet packet, out bool refused) => LookupListener(BucketOf(packet), packet, out refused);

    /// <summary><see cref="LookupListener(in Packet, out bool)"/> over a bucket from <see cref="BucketOf"/>.</summary>
    internal static Sock? LookupListener(Sock[]? bucket, in Packet packet, out bool refused)
    {
        refused = false;
        if (bucket == null) return null;
        // Sockets bound to the destination address first, then wildcard ones: a result or a drop in the first pass ends the lookup.
        var found = Scan(bucket, packet, exact: true, out refused);
        return found != null || refused ? found : Scan(bucket, packet, exact: false, out refused);
    }

    /// <summary>
    /// One pass of <see cref="LookupListener(in Packet, out bool)"/>: the sockets bound exactly to the destination
    /// (<paramref name="exact"/>) or to the wildcard, with reuseport selection; <paramref name="refused"/> when a group
    /// dropped the packet. UDP runs the exact pass before the SK_LOOKUP programs and the wildcard one after
    /// (<c>__udp4_lib_lookup</c>).
    /// </summary>
    internal static Sock? LookupListenerPass(Sock[]? bucket, in Packet packet, bool exact, out bool refused)
    {
        refused = false;
        return bucket == null ? null : Scan(bucket, packet, exact, out refused);
    }

    /// <summary>
    /// One pass of the kernel's scan (<c>inet_lhash2_lookup</c>, <c>udp4_lib_lookup2</c>) over the sockets bound exactly
    /// to the destination or to the wildcard: in chain order, a socket scoring higher than every one before it becomes
    /// the result; when it is in a reuseport group the group selects (with it as ctx-&gt;sk) and that ends the lookup,
    /// unless the group is UDP and has had connections (<c>reuseport_has_conns</c>): then the scan goes on with the
    /// selection's own score as the bar, and a drop keeps the score and ends as a refusal unless a later socket scores higher.
    /// </summary>
    static Sock? Scan(Sock[] bucket, in Packet packet, bool exact, out bool refused)
    {
        Sock? best = null;
        int bestScore = 0;
        bool dropped = false;
        foreach (var s in bucket)
        {
            int score = ListenerScore(s, packet, exact);
            if (score <= bestScore) continue;
            bestScore = score;
            dropped = false;
            best = s;
            if (s.ReuseportGroup is not { } group) continue;
            var chosen = group.Select(s, packet, out bool drop);
            if (packet.Protocol == SocketProtocol.Tcp || !group.HasConns)
            {
                refused = drop;
                return drop ? null : chosen ?? s;
            }
            // A UDP group with connections: keep scanning.
            if (drop)
            {
                dropped = true;
                continue;
            }
            if (chosen == null) continue;
            best = chosen;
            bestScore = Math.Max(bestScore, ListenerScore(chosen, packet, exact));
        }
        refused = dropped;
        return dropped ? null : best;
    }

    // compute_score, one above the kernel's (0 here: the socket cannot take the packet, or is not bound the way this pass
    // looks for, exactly to the destination or to the wildcard). TCP (inet_hashtables.c, inet6_hashtables.c): 2 with a
    // bound device, else 1; +1 for an AF_INET socket on an IPv4 packet. UDP over IPv4 (udp.c): 2 for AF_INET, 1 for a
    // dual-stack socket, +4 with a bound device; over IPv6 (ipv6/udp.c): +1 with a bound device. Each: +1 when the
    // socket's SO_INCOMING_CPU is the CPU the packet is processed on.
    static int ListenerScore(Sock s, in Packet packet, bool exact)
    {
        var wanted = packet.Protocol == SocketProtocol.Tcp ? SockState.Listening : SockState.Bound;
        if (s.State != wanted || s.Local is not { } local) return 0;
        if (!FamilyAccepts(s, packet.Family)) return 0;
        if (s.BoundDevice != 0 && s.BoundDevice != packet.IngressIfindex) return 0;
        if (!AddressMatches(local.Address, packet, out bool isExact) || isExact != exact) return 0;
        bool device = s.BoundDevice != 0, inet = s.Family == SocketFamily.Inet;
        int score = packet.Protocol == SocketProtocol.Tcp ? (device ? 2 : 1) + (inet ? 1 : 0)
            : packet.Family == SocketFamily.Inet ? (inet ? 2 : 1) + (device ? 4 : 0)
            : device ? 1 : 0;
        if (packet.Cpu is int cpu && s.IncomingCpu == cpu) score++;
        return score + 1;
    }
}
