using Errno = BpfJit.Runtime.Errno;
using BpfJit.Runtime.Maps;
using System.Net;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkLookup;

/// <summary>How a lookup ended.</summary>
public enum LookupOutcome
{
    /// <summary>A socket receives the packet.</summary>
    Socket,
    /// <summary>Dropped by the hook or by a reuseport selector: TCP answers RST, UDP ICMP port unreachable; the client sees ECONNREFUSED.</summary>
    Refused,
    /// <summary>No socket matched.</summary>
    None,
}

/// <summary>Where a packet went, and whether the SK_LOOKUP programs ran for it.</summary>
public readonly record struct LookupResult(LookupOutcome Outcome, Sock? Socket, bool ProgramsRan)
{
    /// <summary><c>socket A</c>, <c>refused</c> or <c>none</c>.</summary>
    public override string ToString() => Outcome switch
    {
        LookupOutcome.Socket => $"socket {Socket}",
        LookupOutcome.Refused => "refused",
        _ => "none",
    };
}

/// <summary>
/// A network namespace: its socket table and its SK_LOOKUP hook, and the transport layer's lookup
/// that combines them (spec 5.3-5.5). Safe for lookups from many threads while sockets, maps and
/// links change.
/// </summary>
public sealed class NetNamespace : IDisposable
{
    static long s_nextInode = 4026531840; // where Linux's proc inode numbers for namespaces start
    int _disposed;

    /// <summary>Creates an empty namespace.</summary>
    public NetNamespace()
    {
        Inode = (ulong)Interlocked.Increment(ref s_nextInode);
        Sockets = new SocketTable();
        SkLookup = new SkLookupHook(this);
    }

    /// <summary>The namespace's inode number (<c>netns_ino</c>).</summary>
    public ulong Inode { get; }

    /// <summary>The sockets.</summary>
    public SocketTable Sockets { get; }

    /// <summary>The SK_LOOKUP attach point.</summary>
    public SkLookupHook SkLookup { get; }

    /// <summary>
    /// Looks up the receiving socket for a packet given as raw addresses: 4 network-order bytes
    /// each for <see cref="SocketFamily.Inet"/>, 16 for <see cref="SocketFamily.Inet6"/>; ports in host order.
    /// </summary>
    public LookupResult Lookup(SocketProtocol protocol, SocketFamily family, ReadOnlySpan<byte> sourceAddress, ushort sourcePort,
        ReadOnlySpan<byte> destinationAddress, ushort destinationPort, int ingressIfindex = 1)
    {
        int size = family == SocketFamily.Inet ? 4 : 16;
        if (sourceAddress.Length != size || destinationAddress.Length != size)
            throw new ArgumentException($"{family} addresses are {size} bytes");
        InetAddress Address(ReadOnlySpan<byte> a) => family == SocketFamily.Inet
            ? InetAddress.FromIp4Raw(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(a))
            : InetAddress.FromBytes(a);
        return Lookup(new Packet(protocol, new InetEndPoint(family, Address(sourceAddress), sourcePort),
            new InetEndPoint(family, Address(destinationAddress), destinationPort), ingressIfindex));
    }

    /// <summary>True once <see cref="Dispose"/> began.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Detaches every link and closes every socket of the namespace; from its start, creating sockets,
    /// attaching links and lookups throw <see cref="ObjectDisposedException"/>. A socket or link created by a
    /// call racing the disposal is either refused or closed (detached) before this returns. Again: nothing.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        SkLookup.Close();
        Sockets.Close();
    }

    /// <summary>Looks up the receiving socket for a packet given with .NET end points.</summary>
    public LookupResult Lookup(SocketProtocol protocol, IPEndPoint from, IPEndPoint to, int ingressIfindex = 1) =>
        Lookup(new Packet(protocol, InetEndPoint.From(from), InetEndPoint.From(to), ingressIfindex));

    /// <summary>
    /// The receiving socket for <paramref name="packet"/>, in Linux 6.18's order. TCP (<c>__inet_lookup_listener</c>):
    /// (1) an established connection matching the 4-tuple, without running programs; (2) the SK_LOOKUP programs,
    /// whose selection (after reuseport selection in its group unless F_NO_REUSEPORT) or drop ends the lookup;
    /// (3) listeners bound exactly to the destination, then wildcard ones. UDP (<c>__udp4_lib_lookup</c>,
    /// <c>__udp6_lib_lookup</c>): (1) a connected socket matching the 4-tuple; (2) the sockets bound exactly to the
    /// destination, whose reuseport group selects (its program runs) before the SK_LOOKUP programs do; (3) the SK_LOOKUP
    /// programs, whose selection or drop overrides that result; (4) the exact result (a group's drop included);
    /// (5) wildcard-bound sockets. IPv4 packets may reach dual-stack IPv6 sockets.
    /// </summary>
    public LookupResult Lookup(in Packet packet)
    {
        if (packet.From.Family != packet.To.Family)
            throw new ArgumentException($"packet {packet}: source and destination families differ", nameof(packet));
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        MapEpoch.Enter();
        try
        {
            // One fetch of the (protocol, port) bucket serves every socket-table step; a bind that lands while the
            // programs run is not seen by this lookup, as if it had come after it.
            var bucket = Sockets.BucketOf(packet);
            if (SocketTable.LookupConnected(bucket, packet) is { } connected) return new LookupResult(LookupOutcome.Socket, connected, false);
            if (packet.Protocol == SocketProtocol.Udp)
            {
                // The exact-bound pass runs first for UDP: its group's program has run even when SK_LOOKUP then redirects.
                var exact = SocketTable.LookupListenerPass(bucket, packet, exact: true, out bool exactDropped);
                var udpVerdict = SkLookup.RunInSection(packet);
                if (Redirected(udpVerdict, packet) is { } redirected) return redirected;
                if (exactDropped) return new LookupResult(LookupOutcome.Refused, null, !udpVerdict.Skipped);
                if (exact != null) return new LookupResult(LookupOutcome.Socket, exact, !udpVerdict.Skipped);
                var wildcard = SocketTable.LookupListenerPass(bucket, packet, exact: false, out bool wildcardDropped);
                return Listener(wildcard, wildcardDropped, !udpVerdict.Skipped);
            }
            var verdict = SkLookup.RunInSection(packet);
            if (Redirected(verdict, packet) is { } result) return result;
            var listener = SocketTable.LookupListener(bucket, packet, out bool refused);
            return Listener(listener, refused, !verdict.Skipped);
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    static LookupResult Listener(Sock? listener, bool refused, bool ran) =>
        refused ? new LookupResult(LookupOutcome.Refused, null, ran)
        : listener != null ? new LookupResult(LookupOutcome.Socket, listener, ran)
        : new LookupResult(LookupOutcome.None, null, ran);

    /// <summary>
    /// What the SK_LOOKUP programs' verdict decides on its own (<c>inet_lookup_run_sk_lookup</c>): a drop, or a
    /// selection (then reuseport selection in its group unless F_NO_REUSEPORT); null when they passed without selecting.
    /// </summary>
    static LookupResult? Redirected(in HookVerdict verdict, in Packet packet)
    {
        bool ran = !verdict.Skipped;
        if (!verdict.Pass) return new LookupResult(LookupOutcome.Refused, null, ran);
        if (verdict.Selected == 0) return null;
        // Still inside the reclamation section: the block cannot have been freed.
        var selected = Sock.FromHandle(verdict.Selected);
        if (selected == null || selected.IsClosed) return new LookupResult(LookupOutcome.Refused, null, ran);
        if (!verdict.NoReuseport && selected.ReusePort && selected.ReuseportGroup is { } group)
        {
            var chosen = group.Select(selected, packet, out bool dropped);
            if (dropped) return new LookupResult(LookupOutcome.Refused, null, ran);
            if (chosen != null) selected = chosen;
        }
        return new LookupResult(LookupOutcome.Socket, selected, ran);
    }
}
