using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime.Sockets;

// Request migration at the handshake's final ACK (tcp_v4_rcv / tcp_v6_rcv for a TCP_NEW_SYN_RECV request whose listener
// is no longer TCP_LISTEN): the closed listener stays in its group's closed section (reuseport_stop_listen_sock) and
// the group picks the listener that takes the request (reuseport_migrate_sock with the ACK as the skb).
public sealed unsafe partial class Sock
{
    // The group whose closed section this listener joined at its close (null: it left its group, or never listened).
    ReuseportGroup? _closedSection;

    // The bpf_sock view as it was at the close, for ctx->sk of a later migration: the native block is freed at the close,
    // where the kernel's request keeps its listener alive by a reference.
    byte[]? _closedView;

    /// <summary>
    /// The kernel's <c>req-&gt;rsk_listener</c> side of a request whose final ACK arrives: call it on the listener that
    /// answered the SYN, with <paramref name="ack"/> the ACK (from the client to the listener's address; its
    /// <see cref="Packet.Bytes"/> from the TCP header on, as the program reads them between <c>data</c> and
    /// <c>data_end</c>). While this socket still listens, it takes the request (returns this socket). Once it closed,
    /// the request migrates as <c>reuseport_migrate_sock</c> decides: only if the listener was migration capable when
    /// it closed (<see cref="SocketTable.TcpMigrateReq"/> on, or a program loaded for
    /// <c>BPF_SK_REUSEPORT_SELECT_OR_MIGRATE</c> attached to its group), it stayed in its group; then a migrate program
    /// attached now runs with <c>ctx-&gt;sk</c> this listener, <c>ctx-&gt;migrating_sk</c> the request
    /// (TCP_NEW_SYN_RECV), the ACK as the packet and the request's hash (its <c>sk_hash</c>, the hash its SYN was
    /// looked up with: <see cref="Packet.FlowHash"/> or <see cref="Packet.Hash"/>); anything but SK_PASS drops, a
    /// selection takes it, SK_PASS without one leaves it to the hash among the group's listeners. Without such a program
    /// the request moves by hash only while <c>net.ipv4.tcp_migrate_req</c> is on. Returns the listener that now holds
    /// the request, or null: the kernel drops the request (<c>inet_csk_reqsk_queue_drop_and_put</c>) and looks the ACK
    /// up again as a new packet, which a listener without the request answers with a reset.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="ack"/> is not a TCP packet.</exception>
    /// <exception cref="NotSupportedException">This is not a TCP socket (only TCP listeners have handshake requests).</exception>
    public Sock? MigrateRequest(in Packet ack)
    {
        if (ack.Protocol != SocketProtocol.Tcp) throw new ArgumentException($"the final ACK {ack} is not TCP", nameof(ack));
        if (Protocol != SocketProtocol.Tcp) throw new NotSupportedException($"socket {this}: a {Protocol} socket has no handshake requests");
        ReuseportGroup? group;
        lock (_gate)
        {
            if (State == SockState.Listening) return this;
            group = _closedSection;
        }
        if (group == null) return null;
        // The request as the kernel built it from the SYN: local = the ACK's destination, remote = its source.
        var request = new MigratingRequest(ack.To, ack.From, ack.FlowHash ?? ack.Hash(), Established: false);
        MapEpoch.Enter();
        try
        {
            return group.Migrate(this, request, Table.TcpMigrateReq, ack);
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>The view <see cref="_closedView"/> keeps for a closed listener of a closed section (null otherwise).</summary>
    /// <remarks>A listener shut down (<see cref="Shutdown"/>) but not closed shows its live block.</remarks>
    internal ReadOnlySpan<byte> ClosedView => _closedView
        ?? (_closedSection != null && State != SockState.Closed ? new ReadOnlySpan<byte>(_block, BpfSockLayout.BlockSize) : default);

    // Close, before the socket leaves its group: reuseport_stop_listen_sock keeps a migration-capable listener in the
    // group's closed section; any other socket just leaves (reuseport_detach_sock).
    void KeepClosedSection()
    {
        if (Protocol == SocketProtocol.Tcp && State == SockState.Listening && ReuseportGroup is { } group
            && group.MigrationCapable(Table.TcpMigrateReq))
            _closedSection = group;
    }

    // Close, once the view reads TCP_CLOSE and before the block is retired (_gate held).
    void SnapshotClosedView()
    {
        if (_closedSection != null) _closedView = new ReadOnlySpan<byte>(_block, BpfSockLayout.BlockSize).ToArray();
    }
}
