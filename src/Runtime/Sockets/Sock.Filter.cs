using BpfJit.Runtime.SkReuseport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Runtime.Sockets;

// The socket options that attach and detach a reuseport group's program, as setsockopt on this socket does them
// (net/core/sock.c, sock_reuseport.c): the group is this socket's, and SO_LOCK_FILTER is this socket's flag.
public sealed partial class Sock
{
    bool _filterLocked;

    /// <summary>
    /// SO_LOCK_FILTER (<c>SOCK_FILTER_LOCKED</c>): once set, this socket can no longer attach a reuseport program
    /// (<see cref="AttachReuseportProgram"/>, <see cref="AttachReuseportFilter"/>: -EPERM) and the flag cannot be cleared
    /// (-EPERM, <see cref="SocketErrorException"/>). Only the calling socket's flag counts: another member of the same
    /// group still attaches, and <see cref="DetachReuseportProgram"/> (SO_DETACH_REUSEPORT_BPF) does not look at it.
    /// </summary>
    public bool FilterLocked
    {
        get
        {
            lock (_gate) return _filterLocked;
        }
        set
        {
            lock (_gate)
            {
                if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
                if (_filterLocked && !value) throw new SocketErrorException(Errno.EPERM, $"socket {this}: SO_LOCK_FILTER cannot be cleared once set");
                _filterLocked = value;
            }
        }
    }

    /// <summary>
    /// SO_ATTACH_REUSEPORT_EBPF on this socket (<c>sk_reuseport_attach_bpf</c>): -EPERM when <see cref="FilterLocked"/>,
    /// then <c>reuseport_attach_prog</c>: a socket already in the lookup tables (a TCP listener, a bound UDP socket)
    /// attaches to its group, -EINVAL without one (no SO_REUSEPORT, a connected UDP socket that left it); a socket not
    /// yet there (unbound, a TCP socket that does not listen) with SO_REUSEPORT gets a group of its own that holds the
    /// program until it binds (UDP) or listens (TCP): as the first on its address it founds the group there, program and
    /// all; beside other SO_REUSEPORT sockets its bind or listen fails with -EADDRINUSE (a socket holding a group cannot
    /// share the port). -EINVAL without SO_REUSEPORT.
    /// </summary>
    public void AttachReuseportProgram(SkReuseportProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        GroupForAttach("SO_ATTACH_REUSEPORT_EBPF").Attach(program);
    }

    /// <summary>SO_ATTACH_REUSEPORT_CBPF on this socket: as <see cref="AttachReuseportProgram"/> with a classic filter (<c>__get_filter</c> checks the lock first).</summary>
    public void AttachReuseportFilter(ClassicFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        GroupForAttach("SO_ATTACH_REUSEPORT_CBPF").AttachClassic(filter);
    }

    /// <summary>
    /// SO_DETACH_REUSEPORT_BPF on this socket (<c>reuseport_detach_prog</c>): detaches its group's program, eBPF or
    /// classic, whatever <see cref="FilterLocked"/> says; -ENOENT when the socket has no group but SO_REUSEPORT, or the
    /// group has no program; -EINVAL without SO_REUSEPORT (<see cref="SocketErrorException"/>).
    /// </summary>
    public void DetachReuseportProgram()
    {
        ReuseportGroup? group;
        lock (_gate)
        {
            if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
            group = ReuseportGroup;
        }
        if (group == null)
            throw new SocketErrorException(_reusePort ? Errno.ENOENT : Errno.EINVAL, $"SO_DETACH_REUSEPORT_BPF: socket {this} is in no reuseport group");
        group.Detach();
    }

    ReuseportGroup GroupForAttach(string option)
    {
        lock (_gate)
        {
            if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
            if (_filterLocked) throw new SocketErrorException(Errno.EPERM, $"{option}: socket {this} has SO_LOCK_FILTER set");
            // sk_unhashed: not in a lookup table yet (a TCP socket is hashed once it listens, or as a connection).
            bool unhashed = State == SockState.Unbound || (Protocol == SocketProtocol.Tcp && State == SockState.Bound);
            if (unhashed)
            {
                if (!_reusePort) throw new SocketErrorException(Errno.EINVAL, $"{option}: socket {this} has no SO_REUSEPORT");
                return Table.GroupOfOwn(this);
            }
            return ReuseportGroup ?? throw new SocketErrorException(Errno.EINVAL, $"{option}: socket {this} is in no reuseport group");
        }
    }
}
