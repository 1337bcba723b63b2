using BpfJit.Runtime.Maps;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace BpfJit.Runtime.Sockets;

/// <summary>The life stages of a socket as the socket table sees them.</summary>
public enum SockState
{
    /// <summary>Created, not bound.</summary>
    Unbound,
    /// <summary>Bound to a local address (an unconnected UDP socket receives in this state).</summary>
    Bound,
    /// <summary>A TCP listener.</summary>
    Listening,
    /// <summary>A connected UDP socket or an established TCP connection.</summary>
    Connected,
    /// <summary>Closed: out of every table and map, never handed out again.</summary>
    Closed,
}

/// <summary>
/// A socket of the userspace packet stack (the kernel's <c>struct sock</c>). It owns a native
/// block whose first 80 bytes are the <c>struct bpf_sock</c> programs read (see
/// <see cref="BpfSockLayout"/>); <see cref="Handle"/> is the pointer programs hold. Options are set
/// before <see cref="Bind"/>; <see cref="Close"/> unlinks the socket from its table and every map
/// and frees the block through <see cref="Maps.MapEpoch"/> once no running program can read it.
/// <para>
/// Once <see cref="Close"/> has begun, every member that would touch the native block refuses:
/// the option setters throw <see cref="ObjectDisposedException"/>, <see cref="Bind"/>,
/// <see cref="Listen"/> and <see cref="Connect"/> throw a <see cref="SocketErrorException"/> with EBADF
/// (the kernel's answer for a closed descriptor), <see cref="ProgramReferences"/> reads 0; the getters of
/// managed state (<see cref="Mark"/>, <see cref="Local"/>, ...) keep returning the last values. Writers of
/// the block hold the socket's lock and check for the close under it, and the close retires the block
/// only after it set that mark under the same lock, so no writer can reach the freed block.
/// </para>
/// </summary>
public sealed unsafe partial class Sock
{
    static long s_nextCookie;

    /// <summary>A fresh socket cookie (the kernel's <c>sock_gen_cookie</c>), for a socket block that is not a <see cref="Sock"/>.</summary>
    internal static ulong NewCookie() => (ulong)Interlocked.Increment(ref s_nextCookie);
    static readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, Sock> s_live = new();

    readonly byte* _block;
    readonly GCHandle _self;
    readonly object _gate = new();
    readonly List<Action<Sock>> _onClose = [];
    bool _reusePort, _v6Only, _closing;
    int _closer;    // the managed thread id running the close (0 before)
    uint _mark, _priority, _boundDevice;
    int _incomingCpu = -1;

    internal Sock(SocketTable table, SocketFamily family, SocketProtocol protocol)
    {
        Table = table;
        Family = family;
        Protocol = protocol;
        Cookie = (ulong)Interlocked.Increment(ref s_nextCookie);
        // Aligned to the span of the socket's kernel image (KernelProbe): two sockets' blocks are a span apart at least,
        // so their images never overlap (the allocator reuses the rest of the page for other memory).
        _block = Maps.Native.Alloc(BpfSockLayout.BlockSize, KernelProbe.SocketImageSpan);
        Checked.MemoryRegions.Register((ulong)_block, BpfSockLayout.ViewSize, Checked.MemoryRegionKind.Socket);
        SocketImages.Register((ulong)_block);
        _self = GCHandle.Alloc(this);
        Write32(BpfSockLayout.Family, (uint)family);
        Write32(BpfSockLayout.Type, protocol == SocketProtocol.Tcp ? BpfSockLayout.SockStream : BpfSockLayout.SockDgram);
        Write32(BpfSockLayout.Protocol, (uint)protocol);
        Write32(BpfSockLayout.RxQueueMapping, uint.MaxValue);
        Write32(BpfSockLayout.Magic, BpfSockLayout.MagicValue);
        *(ulong*)(_block + BpfSockLayout.Cookie) = Cookie;
        *(nint*)(_block + BpfSockLayout.Owner) = GCHandle.ToIntPtr(_self);
        SyncView();
        s_live[Cookie] = this;
    }

    /// <summary>
    /// The open socket with cookie <paramref name="cookie"/>, or null. Userspace map updates name a
    /// socket by its cookie, the way the kernel's take a file descriptor.
    /// </summary>
    public static Sock? FromCookie(ulong cookie) => s_live.TryGetValue(cookie, out var s) ? s : null;

    /// <summary>
    /// Runs <paramref name="action"/> while the socket cannot close, and registers
    /// <paramref name="onClose"/>; false (nothing run) when already closed. Maps insert through this
    /// so that a socket closing concurrently is either never inserted or removed by its close.
    /// </summary>
    internal bool WhileOpen(Action action, Action<Sock>? onClose)
    {
        lock (_gate)
        {
            if (_closing) return false;
            action();
            if (onClose != null && !_onClose.Contains(onClose)) _onClose.Add(onClose);
            return true;
        }
    }

    /// <summary>The table (network namespace) the socket lives in.</summary>
    public SocketTable Table { get; }

    /// <summary>A label for printing (the scenario's socket name); defaults to the cookie.</summary>
    public string? Name { get; set; }

    /// <summary>AF_INET or AF_INET6.</summary>
    public SocketFamily Family { get; }

    /// <summary>TCP or UDP.</summary>
    public SocketProtocol Protocol { get; }

    /// <summary>The unique socket cookie (SO_COOKIE), never 0.</summary>
    public ulong Cookie { get; }

    /// <summary>The current state.</summary>
    public SockState State { get; private set; }

    /// <summary>The bound local end point (null before bind). Set by the socket table under its lock, before the socket joins its bucket.</summary>
    public InetEndPoint? Local { get; internal set; }

    /// <summary>The peer of a connected socket.</summary>
    public InetEndPoint? Peer { get; private set; }

    /// <summary>The reuseport group the socket joined at bind, if it set SO_REUSEPORT.</summary>
    public ReuseportGroup? ReuseportGroup { get; internal set; }

    /// <summary>
    /// The kernel's <c>sk_user_data</c> as BPF maps use it: the REUSEPORT_SOCKARRAY slot that holds the socket, or null.
    /// A socket is in at most one such slot (a second update is -EBUSY); set and cleared under the map's lock.
    /// </summary>
    internal object? UserData;

    /// <summary>
    /// SOCKMAP/SOCKHASH entries holding the socket (the links of the kernel's <c>sk_psock</c>, which owns
    /// <c>sk_user_data</c> while any is held): a REUSEPORT_SOCKARRAY refuses such a socket with -EBUSY.
    /// </summary>
    internal int SockMapLinks;

    /// <summary>Writes the reuseport group id into the native block (<see cref="BpfSockLayout.ReuseportId"/>); the table's lock held.</summary>
    internal void SetReuseportId(uint id) => Write32(BpfSockLayout.ReuseportId, id);

    /// <summary>The address of the native <c>struct bpf_sock</c> view: what a program holds as the socket pointer.</summary>
    public nint Handle => (nint)_block;

    /// <summary>True once closed.</summary>
    public bool IsClosed => State == SockState.Closed;

    /// <summary>References programs hold on a refcounted socket (acquired by sockmap lookups, dropped by sk_release); 0 once <see cref="Close"/> began.</summary>
    public int ProgramReferences
    {
        get
        {
            lock (_gate) return _closing ? 0 : Volatile.Read(ref *(int*)(_block + BpfSockLayout.RefCount));
        }
    }

    /// <summary>
    /// The kernel's <c>sk_is_refcounted</c>: true unless the socket is a hashed TCP listener or a
    /// bound (hashed) UDP socket, which carry SOCK_RCU_FREE. sk_assign refuses refcounted sockets.
    /// </summary>
    public bool IsRefcounted => Protocol == SocketProtocol.Tcp
        ? State != SockState.Listening
        : State is not (SockState.Bound or SockState.Connected);

    /// <summary>SO_REUSEPORT; set before bind.</summary>
    public bool ReusePort
    {
        get => _reusePort;
        set
        {
            lock (_gate)
            {
                RequireOpen();
                RequireUnbound(nameof(ReusePort));
                _reusePort = value;
                SyncView();
            }
        }
    }

    /// <summary>IPV6_V6ONLY (AF_INET6 only); set before bind.</summary>
    public bool V6Only
    {
        get => _v6Only;
        set
        {
            if (Family != SocketFamily.Inet6) throw new SocketErrorException(Errno.ENOPROTOOPT, "IPV6_V6ONLY needs an AF_INET6 socket");
            lock (_gate)
            {
                RequireOpen();
                RequireUnbound(nameof(V6Only));
                _v6Only = value;
                SyncView();
            }
        }
    }

    /// <summary>SO_MARK; settable at any time until <see cref="Close"/> (then <see cref="ObjectDisposedException"/>).</summary>
    public uint Mark
    {
        get => _mark;
        set => SetOption(ref _mark, value, BpfSockLayout.Mark);
    }

    /// <summary>SO_PRIORITY; settable at any time until <see cref="Close"/> (then <see cref="ObjectDisposedException"/>).</summary>
    public uint Priority
    {
        get => _priority;
        set => SetOption(ref _priority, value, BpfSockLayout.Priority);
    }

    /// <summary>
    /// SO_BINDTODEVICE as an ifindex, 0 for none; settable at any time until <see cref="Close"/> (then
    /// <see cref="ObjectDisposedException"/>). A bound socket only receives packets that arrive on that interface,
    /// also through its reuseport group. Set before <see cref="Bind"/>, it chooses the group the socket joins.
    /// </summary>
    public int BoundDevice
    {
        get => (int)_boundDevice;
        set => SetOption(ref _boundDevice, (uint)value, BpfSockLayout.BoundDevIf);
    }

    /// <summary>
    /// SO_INCOMING_CPU (the kernel's <c>sk_incoming_cpu</c>): -1 until set; any value is accepted
    /// (<c>reuseport_update_incoming_cpu</c>), settable at any time until <see cref="Close"/> (then
    /// <see cref="ObjectDisposedException"/>). A packet processed on this CPU (<see cref="Packet.Cpu"/>) prefers this socket:
    /// one more point in the listener lookup's score, and first choice of its reuseport group's hash among the members
    /// that set it. The kernel also records the CPU a connected UDP socket last received on here; BpfJit does not see
    /// deliveries, so only this setter changes it.
    /// </summary>
    public int IncomingCpu
    {
        get => Volatile.Read(ref _incomingCpu);
        set
        {
            lock (_gate)
            {
                RequireOpen();
                Volatile.Write(ref _incomingCpu, value);
            }
        }
    }

    // The field and the block change together under the lock, and never once the close began (the block may be freed).
    void SetOption(ref uint field, uint value, int offset)
    {
        lock (_gate)
        {
            RequireOpen();
            field = value;
            Write32(offset, value);
        }
    }

    void RequireOpen() => ObjectDisposedException.ThrowIf(_closing, this);

    /// <summary>Binds to <paramref name="local"/> (port 0 picks a free ephemeral port); fails with EADDRINUSE on a conflict.</summary>
    public void Bind(InetEndPoint local)
    {
        lock (_gate)
        {
            // _closing, not State: a close that began has already taken the socket out of its table, and a
            // bind now would put it back for good.
            if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
            if (State != SockState.Unbound) throw new SocketErrorException(Errno.EINVAL, $"socket {this}: already bound");
            if (local.Family != Family && !(Family == SocketFamily.Inet6 && local.Family == SocketFamily.Inet))
                throw new SocketErrorException(Errno.EAFNOSUPPORT, $"socket {this}: cannot bind an {Family} socket to {local}");
            if (Family == SocketFamily.Inet6 && local.Family == SocketFamily.Inet) local = local with { Family = SocketFamily.Inet6 };
            if (_v6Only && local.Address.IsV4Mapped && !local.Address.IsAny)
                throw new SocketErrorException(Errno.EINVAL, $"socket {this}: v6only socket cannot bind a v4-mapped address");
            Table.Bind(this, local);
            _portLocked = local.Port != 0;
            State = SockState.Bound;
            SyncView();
        }
    }

    /// <summary>Starts listening (TCP); the socket becomes a candidate for lookups and for sk_assign.</summary>
    public void Listen()
    {
        lock (_gate)
        {
            if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
            if (Protocol != SocketProtocol.Tcp) throw new SocketErrorException(Errno.EOPNOTSUPP, $"socket {this}: listen on a UDP socket");
            // Autobind: a listener that released its port at a shutdown keeps its address (inet_csk_get_port with port 0).
            if (State == SockState.Unbound) Bind(Local ?? new InetEndPoint(Family, Family == SocketFamily.Inet ? InetAddress.Any4 : InetAddress.Any6, 0));
            if (State != SockState.Bound) throw new SocketErrorException(Errno.EINVAL, $"socket {this}: cannot listen in state {State}");
            State = SockState.Listening;
            SyncView();
            try
            {
                Table.Listened(this);
                // Listening again after a shutdown: out of the old group's closed section (reuseport_resurrect).
                _closedSection = null;
                _closedView = null;
            }
            catch (SocketErrorException)
            {
                // inet_csk_listen_start: the port check failed; the socket stays bound, not listening.
                State = SockState.Bound;
                SyncView();
                throw;
            }
        }
    }

    /// <summary>
    /// Connects to <paramref name="peer"/>: a UDP socket becomes connected (binding first if needed);
    /// a TCP socket becomes an established connection (the packet stack's accepted or connected socket).
    /// </summary>
    public void Connect(InetEndPoint peer)
    {
        lock (_gate)
        {
            if (_closing) throw new SocketErrorException(Errno.EBADF, $"socket {this}: closed");
            if (State is SockState.Connected or SockState.Listening) throw new SocketErrorException(Errno.EISCONN, $"socket {this}: already {State}");
            if (peer.Family == SocketFamily.Inet && Family == SocketFamily.Inet6) peer = peer with { Family = SocketFamily.Inet6 };
            if (peer.Family != Family) throw new SocketErrorException(Errno.EAFNOSUPPORT, $"socket {this}: cannot connect to {peer}");
            if (State == SockState.Unbound)
                Bind(new InetEndPoint(Family, Family == SocketFamily.Inet ? InetAddress.Any4 : InetAddress.Any6, 0));
            bool wildcardBound = Local is { } bound && bound.Address.IsAny;
            Peer = peer;
            State = SockState.Connected;
            SyncView();
            if (Protocol == SocketProtocol.Udp) Table.UdpConnected(this, wildcardBound);
        }
    }

    /// <summary>
    /// Closes a TCP listener whose accept queue holds <paramref name="pending"/> (the connections the host's stack has
    /// for it) and migrates them as Linux's <c>inet_csk_listen_stop</c> does (<c>reuseport_migrate_sock</c>): when the
    /// listener is in a reuseport group and migration is enabled (<see cref="SocketTable.TcpMigrateReq"/>, or the group's
    /// program was loaded for <c>BPF_SK_REUSEPORT_SELECT_OR_MIGRATE</c>), each request goes to the listener the group's
    /// program selects with <c>ctx-&gt;migrating_sk</c> set, or, without such a program or when it passes without
    /// selecting, to the one its hash picks among the remaining listeners. Returns, per request, the listener that now
    /// queues it, or null where the kernel resets the connection (no migration, a drop, no listener left, a selected
    /// socket that does not listen). Any other socket just closes (every entry null).
    /// </summary>
    public Sock?[] CloseListener(IReadOnlyList<MigratingRequest> pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        var targets = new Sock?[pending.Count];
        // The section keeps this socket's block, the program's ctx->sk, readable after the close retires it.
        MapEpoch.Enter();
        try
        {
            ReuseportGroup? group;
            bool listening;
            lock (_gate)
            {
                group = ReuseportGroup;
                listening = State == SockState.Listening && Protocol == SocketProtocol.Tcp;
            }
            // tcp_close: TCP_CLOSE and out of the listening hash (reuseport_stop_listen_sock) before the queue migrates.
            Close();
            if (group == null || !listening) return targets;
            bool migrateReq = Table.TcpMigrateReq;
            for (int i = 0; i < targets.Length; i++) targets[i] = group.Migrate(this, pending[i], migrateReq);
            return targets;
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>
    /// Closes: the socket leaves the table and every map at once; its native block is freed once no running
    /// program can read it. Every call returns only once the socket is closed: a call racing the first one
    /// waits for it (a lookup that begins after any <see cref="Close"/> returned never finds the socket). A
    /// close called again from an <see cref="OnClose"/> action of the same socket returns at once.
    /// </summary>
    public void Close()
    {
        Action<Sock>[] hooks;
        lock (_gate)
        {
            if (_closing)
            {
                // Another thread is closing: wait until it is done (its own hooks calling Close return at once).
                while (State != SockState.Closed && _closer != Environment.CurrentManagedThreadId) Monitor.Wait(_gate);
                return;
            }
            _closing = true;    // from here no map accepts the socket, no bind or setter touches it
            _closer = Environment.CurrentManagedThreadId;
            hooks = [.. _onClose];
            _onClose.Clear();
        }
        try
        {
            // Unlink first, then mark closed: a lookup that starts after the unlink cannot find the
            // socket; one already holding it sees it listening (and may still get it) or closed.
            s_live.TryRemove(Cookie, out _);
            foreach (var h in hooks) h(this);
            KeepClosedSection();
            Table.Remove(this);
        }
        finally
        {
            lock (_gate)
            {
                State = SockState.Closed;
                SyncView();
                SnapshotClosedView();
                Monitor.PulseAll(_gate);
            }
            MapEpoch.Retire(Free);
        }
    }

    /// <summary>Registers an action run when the socket closes (maps use it to drop their entries); runs at once if already closed.</summary>
    public void OnClose(Action<Sock> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        lock (_gate)
        {
            if (!_closing)
            {
                _onClose.Add(action);
                return;
            }
        }
        action(this);
    }

    /// <summary>Removes an action registered with <see cref="OnClose"/>.</summary>
    public void RemoveOnClose(Action<Sock> action)
    {
        lock (_gate) _onClose.Remove(action);
    }

    /// <summary>The socket whose native view is at <paramref name="handle"/>, or null when the address is not a live socket block.</summary>
    public static Sock? FromHandle(nint handle)
    {
        if (handle == 0) return null;
        byte* p = (byte*)handle;
        if (*(uint*)(p + BpfSockLayout.Magic) != BpfSockLayout.MagicValue) return null;
        return GCHandle.FromIntPtr(*(nint*)(p + BpfSockLayout.Owner)).Target as Sock;
    }

    /// <summary>Reads the runtime flags of the socket block at <paramref name="handle"/>.</summary>
    public static SockFlags FlagsOf(nint handle) => (SockFlags)Volatile.Read(ref *(uint*)((byte*)handle + BpfSockLayout.Flags));

    /// <summary>Takes a program reference on a refcounted socket (a no-op for the others, as in the kernel).</summary>
    public static void AddRef(nint handle)
    {
        if ((FlagsOf(handle) & SockFlags.Refcounted) != 0) Interlocked.Increment(ref *(int*)((byte*)handle + BpfSockLayout.RefCount));
    }

    /// <summary>Drops a program reference taken by <see cref="AddRef"/>.</summary>
    public static void Release(nint handle)
    {
        if ((FlagsOf(handle) & SockFlags.Refcounted) != 0) Interlocked.Decrement(ref *(int*)((byte*)handle + BpfSockLayout.RefCount));
    }

    /// <summary>The cookie stored in the socket block at <paramref name="handle"/>.</summary>
    public static ulong CookieOf(nint handle) => *(ulong*)((byte*)handle + BpfSockLayout.Cookie);

    /// <inheritdoc />
    public override string ToString() => Name ?? $"#{Cookie}";

    void RequireUnbound(string option)
    {
        if (State != SockState.Unbound) throw new SocketErrorException(Errno.EINVAL, $"socket {this}: {option} must be set before bind");
    }

    void Write32(int offset, uint value) => Volatile.Write(ref *(uint*)(_block + offset), value);

    // Rewrites the view from the managed state. Cross-family address fields follow the kernel:
    // an AF_INET6 socket's src_ip4 is the v4 part of a v4-mapped address, 0 for ::, and the
    // placeholder 127.0.0.6 otherwise; an AF_INET socket's ip6 fields read 0.
    void SyncView()
    {
        var local = Local ?? new InetEndPoint(Family, default, 0);
        var peer = Peer ?? new InetEndPoint(Family, default, 0);
        Write32(BpfSockLayout.SrcIp4, SrcIp4(local.Address));
        Write32(BpfSockLayout.DstIp4, SrcIp4(peer.Address));
        WriteIp6(BpfSockLayout.SrcIp6, Family == SocketFamily.Inet6 ? local.Address : default);
        WriteIp6(BpfSockLayout.DstIp6, Family == SocketFamily.Inet6 ? peer.Address : default);
        Write32(BpfSockLayout.SrcPort, local.Port);
        Write32(BpfSockLayout.DstPort, BinaryPrimitives.ReverseEndianness(peer.Port));
        Write32(BpfSockLayout.State, State switch
        {
            SockState.Listening => BpfSockLayout.TcpListen,
            SockState.Connected => BpfSockLayout.TcpEstablished,
            _ => BpfSockLayout.TcpClose,
        });
        var flags = SockFlags.None;
        if (IsRefcounted) flags |= SockFlags.Refcounted;
        if (_v6Only) flags |= SockFlags.V6Only;
        if (_reusePort) flags |= SockFlags.ReusePort;
        if (State == SockState.Closed) flags |= SockFlags.Closed;
        Write32(BpfSockLayout.Flags, (uint)flags);
    }

    uint SrcIp4(InetAddress a)
    {
        if (Family == SocketFamily.Inet || a.IsV4Mapped) return a.Ip4Raw;
        return a.IsAny ? 0 : 0x0600007fu; // 127.0.0.6, the kernel's LOOPBACK4_IPV6
    }

    void WriteIp6(int offset, InetAddress a) => a.WriteBytes(new Span<byte>(_block + offset, 16));

    void Free()
    {
        *(uint*)(_block + BpfSockLayout.Magic) = 0;
        _self.Free();
        Checked.MemoryRegions.Unregister((ulong)_block);
        SocketImages.Unregister((ulong)_block);
        Maps.Native.Free(_block);
    }
}
