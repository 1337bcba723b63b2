using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime.Sockets;

/// <summary>What <see cref="Sock.Shutdown"/> shuts (the values of SHUT_RD, SHUT_WR, SHUT_RDWR).</summary>
public enum ShutdownHow
{
    /// <summary>SHUT_RD: the receiving side (on a TCP listener: the listener itself).</summary>
    Read = 0,
    /// <summary>SHUT_WR: the sending side (a TCP listener ignores it).</summary>
    Write = 1,
    /// <summary>SHUT_RDWR: both.</summary>
    ReadWrite = 2,
}

// shutdown(2) (inet_shutdown): a TCP listener shut for reading stops listening (tcp_disconnect) and may listen again.
public sealed unsafe partial class Sock
{
    // bind() named the port (the kernel's SOCK_BINDPORT_LOCK): a listener that stops listening keeps it. Without it (an
    // autobind, port 0) the port goes back (inet_put_port) and the next listen picks another.
    bool _portLocked;

    /// <summary>
    /// shutdown(2), as Linux 6.18's <c>inet_shutdown</c>. On a TCP listener, <see cref="ShutdownHow.Read"/> or
    /// <see cref="ShutdownHow.ReadWrite"/> stops it (<c>tcp_disconnect</c>): it leaves the listening chain and its
    /// reuseport group (<c>reuseport_stop_listen_sock</c>: into the group's closed section when migration capable, as at
    /// a close, so its handshake requests can still migrate at their final ACK through <see cref="MigrateRequest"/>)
    /// and its REUSEPORT_SOCKARRAY slot (<c>bpf_sk_reuseport_detach</c>); a SOCKMAP/SOCKHASH keeps its entries (Linux
    /// 6.18 does, checked live; a new update of it is <c>-EOPNOTSUPP</c> while it does not listen); it becomes TCP_CLOSE (<see cref="SockState.Bound"/>, keeping a port that bind() named;
    /// an autobound port is released, <see cref="SockState.Unbound"/>), and the connections queued on it
    /// (<paramref name="pending"/>) migrate as <see cref="CloseListener"/> migrates them: the return value is, per
    /// request, the listener that now queues it or null (reset). <see cref="Listen"/> again makes it a listener that
    /// joins the group of its bind point (the same group when its other listeners are still there, else a new one
    /// without a program: <c>reuseport_resurrect</c>). <see cref="ShutdownHow.Write"/> on a listener does nothing.
    /// A connected socket (a connected UDP socket, an established TCP connection) returns at once: BpfJit keeps no
    /// receive or send queue and no TCP state after ESTABLISHED; the FIN is the host's. Any other socket is
    /// <c>-ENOTCONN</c> (<see cref="SocketErrorException"/>); a value outside <see cref="ShutdownHow"/> <c>-EINVAL</c>;
    /// a closed socket <c>-EBADF</c>.
    /// </summary>
    public Sock?[] Shutdown(ShutdownHow how, IReadOnlyList<MigratingRequest>? pending = null)
    {
        if (how is < ShutdownHow.Read or > ShutdownHow.ReadWrite)
            throw new SocketErrorException(Errno.EINVAL, $"socket {this}: shutdown how {(int)how} is not SHUT_RD, SHUT_WR or SHUT_RDWR");
        var targets = new Sock?[pending?.Count ?? 0];
        // As CloseListener: the section keeps the program's ctx->sk readable while the queue migrates.
        MapEpoch.Enter();
        try
        {
            ReuseportGroup? group;
            lock (_gate)
            {
                if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
                if (State == SockState.Connected) return targets;
                if (Protocol != SocketProtocol.Tcp || State != SockState.Listening)
                    throw new SocketErrorException(Errno.ENOTCONN, $"socket {this}: shutdown in state {State} (not connected)");
                if (how == ShutdownHow.Write) return targets;
                group = ReuseportGroup;
                // tcp_set_state(TCP_CLOSE) unhashes before the state changes: reuseport_stop_listen_sock, the REUSEPORT_SOCKARRAY.
                KeepClosedSection();
                Table.Unlisten(this, releasePort: !_portLocked);
                if (!_portLocked && Local is { } local) Local = local with { Port = 0 };
                State = _portLocked ? SockState.Bound : SockState.Unbound;
                SyncView();
            }
            if (group == null || pending == null) return targets;
            bool migrateReq = Table.TcpMigrateReq;
            for (int i = 0; i < targets.Length; i++) targets[i] = group.Migrate(this, pending[i], migrateReq);
            return targets;
        }
        finally
        {
            MapEpoch.Exit();
        }
    }
}
