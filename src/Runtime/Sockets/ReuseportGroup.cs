using Errno = BpfJit.Runtime.Errno;

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
/// A connection waiting on a TCP listener that closes, as the host's stack holds it: an established child in the accept
/// queue (what <c>inet_csk_listen_stop</c> migrates), or with <paramref name="Established"/> false a request still in
/// the handshake (<c>TCP_NEW_SYN_RECV</c>). An SK_REUSEPORT program reads it as <c>ctx-&gt;migrating_sk</c>
/// (<paramref name="Local"/> is its source, <paramref name="Remote"/> its destination) and <paramref name="Hash"/> as
/// <c>ctx-&gt;hash</c> (the kernel's <c>sk_hash</c> of the connection).
/// </summary>
public readonly record struct MigratingRequest(InetEndPoint Local, InetEndPoint Remote, uint Hash, bool Established = true);

/// <summary>
/// Stands in for a group's SO_ATTACH_REUSEPORT_EBPF program: sees the packet and the group, and
/// may pick a member, drop, or leave the choice to the hash.
/// </summary>
public delegate ReuseportDecision ReuseportSelector(ReuseportGroup group, in Packet packet);

/// <summary>
/// An SO_REUSEPORT group: the sockets of one protocol bound with SO_REUSEPORT to the same local
/// address and port, of the same family, with the same IPV6_V6ONLY and bound device at bind (as Linux's
/// <c>inet_reuseport_add_sock</c> requires). Selection follows <c>reuseport_select_sock</c>: the group's
/// SK_REUSEPORT program (<see cref="Attach"/>) or the selector stand-in when it has one, otherwise a hash of the 4-tuple over the members, skipping connected ones
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

    /// <summary>The shared bind point (for a socket's group of its own before it bound: the wildcard, port 0).</summary>
    public InetEndPoint Local { get; internal set; }

    /// <summary>
    /// The members in the kernel's <c>socks[]</c> order: join order, except that a member leaving (a close, a UDP connect)
    /// is replaced by the last one.
    /// </summary>
    public IReadOnlyList<Sock> Members => Volatile.Read(ref _members);

    /// <summary>
    /// True once a UDP member connected (<c>reuseport_has_conns</c>; it stays set): the listener lookup then keeps
    /// scoring after the group's selection instead of taking it at once (<see cref="SocketTable.LookupListener(in Packet, out bool)"/>).
    /// </summary>
    public bool HasConns { get; internal set; }

    /// <summary>The group's program stand-in, or null to select by hash.</summary>
    public ReuseportSelector? Selector { get; set; }

    static int s_nextId;

    /// <summary>
    /// The group's id (the kernel's <c>reuseport_id</c>, never 0): a member's socket block carries it, so that
    /// <c>bpf_sk_select_reuseport</c> can tell a socket of this group from one of another.
    /// </summary>
    public uint Id { get; } = (uint)Interlocked.Increment(ref s_nextId);

    /// <summary>
    /// True when the group is bound to the wildcard address (<c>sock_reuseport.bind_inany</c>), what a program reads
    /// as <c>bind_inany</c> (<c>inet_rcv_saddr_any</c>: 0.0.0.0 for AF_INET, <c>::</c> for AF_INET6).
    /// </summary>
    public bool BindInany => Local.Family == SocketFamily.Inet6 ? Local.Address == InetAddress.Any6 : Local.Address.IsAny;

    internal void Add(Sock s)
    {
        lock (_gate) _members = [.. _members, s];
        s.SetReuseportId(Id);
    }

    internal void Remove(Sock s)
    {
        lock (_gate)
        {
            // __reuseport_detach_sock: the last member takes the leaving one's place, which the hash's pick then sees.
            int i = Array.IndexOf(_members, s);
            if (i >= 0)
            {
                var next = _members[..^1];
                if (i < next.Length) next[i] = _members[^1];
                _members = next;
            }
        }
        s.SetReuseportId(0);
    }

    // The group's one program (the kernel's reuse->prog): an SkReuseportProgram or a ClassicFilter; either replaces the other.
    object? _program;

    /// <summary>The SK_REUSEPORT program attached to the group, or null (none, or a classic filter).</summary>
    public SkReuseport.SkReuseportProgram? Program => Volatile.Read(ref _program) as SkReuseport.SkReuseportProgram;

    /// <summary>The classic filter attached with <see cref="AttachClassic"/>, or null.</summary>
    public SkReuseport.ClassicFilter? ClassicProgram => Volatile.Read(ref _program) as SkReuseport.ClassicFilter;

    /// <summary>
    /// SO_ATTACH_REUSEPORT_EBPF: attaches <paramref name="program"/> to the group, replacing the program attached
    /// before (whose reference is dropped); the group holds a reference until it is detached, replaced, or the
    /// group's last member closes. From then on every selection in the group runs it (<see cref="Select(Sock, in Packet, out bool)"/>).
    /// <see cref="ObjectDisposedException"/> when the program is gone; -EINVAL (<see cref="SocketErrorException"/>)
    /// once the group has no member left.
    /// </summary>
    public void Attach(SkReuseport.SkReuseportProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        object? old;
        lock (_gate)
        {
            if (_members.Length == 0) throw new SocketErrorException(Errno.EINVAL, "SO_ATTACH_REUSEPORT_EBPF: the reuseport group has no member");
            if (!program.TryAddRef()) throw new ObjectDisposedException(program.ToString(), $"program {program.Name} is unloaded");
            old = _program;
            Volatile.Write(ref _program, program);
        }
        (old as SkReuseport.SkReuseportProgram)?.Release();
    }

    /// <summary>
    /// SO_ATTACH_REUSEPORT_CBPF: attaches the classic <paramref name="filter"/> (checked when it was built) to the group,
    /// replacing the program attached before, eBPF or classic (<c>reuseport_attach_prog</c>). From then on a selection
    /// runs it on the packet's payload (<see cref="SkReuseport.ClassicFilter.Run"/>) and its return value is the index
    /// of the receiving member in <see cref="Members"/>; a value past the last member, or a packet shorter than its
    /// transport header, falls back to the hash (<c>run_bpf_filter</c>). -EINVAL (<see cref="SocketErrorException"/>)
    /// once the group has no member left.
    /// </summary>
    public void AttachClassic(SkReuseport.ClassicFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        object? old;
        lock (_gate)
        {
            if (_members.Length == 0) throw new SocketErrorException(Errno.EINVAL, "SO_ATTACH_REUSEPORT_CBPF: the reuseport group has no member");
            old = _program;
            Volatile.Write(ref _program, filter);
        }
        (old as SkReuseport.SkReuseportProgram)?.Release();
    }

    /// <summary>SO_DETACH_REUSEPORT_BPF: detaches the group's program, eBPF or classic; -ENOENT (<see cref="SocketErrorException"/>) when none is attached.</summary>
    public void Detach()
    {
        object? old;
        lock (_gate)
        {
            old = _program;
            Volatile.Write(ref _program, null);
        }
        if (old == null) throw new SocketErrorException(Errno.ENOENT, "SO_DETACH_REUSEPORT_BPF: no program is attached to the reuseport group");
        (old as SkReuseport.SkReuseportProgram)?.Release();
    }

    /// <summary>The group's end (its last member left): the attached program's reference goes (<c>reuseport_free_rcu</c>).</summary>
    internal void Close()
    {
        object? old;
        lock (_gate)
        {
            old = _program;
            Volatile.Write(ref _program, null);
        }
        (old as SkReuseport.SkReuseportProgram)?.Release();
    }

    /// <summary>
    /// <see cref="Select(Sock, in Packet, out bool)"/> with the group's first member as the socket the lookup found.
    /// </summary>
    public Sock? Select(in Packet packet, out bool dropped)
    {
        var members = Volatile.Read(ref _members);
        if (members.Length == 0)
        {
            dropped = false;
            return null;
        }
        return Select(members[0], packet, out dropped);
    }

    /// <summary>
    /// <c>reuseport_select_sock</c>: picks the member that receives <paramref name="packet"/>, for a lookup that found
    /// <paramref name="sk"/> (a member; the program reads it as <c>ctx-&gt;sk</c>). With an SK_REUSEPORT program
    /// attached it runs (<c>bpf_run_sk_reuseport</c>): anything but SK_PASS drops the packet (null with
    /// <paramref name="dropped"/> set: the lookup is refused), a selected socket receives it (whatever its state:
    /// the kernel does not check it again), and SK_PASS without a selection falls back to the hash. Without a
    /// program, the <see cref="Selector"/> stand-in answers the same way. The hash
    /// (<see cref="Packet.FlowHash"/> or <see cref="Packet.Hash"/>, what the program reads as <c>hash</c>) picks among the members that receive,
    /// walking past connected UDP sockets (<c>reuseport_select_sock_by_hash</c>); null when none can.
    /// </summary>
    public Sock? Select(Sock sk, in Packet packet, out bool dropped)
    {
        ArgumentNullException.ThrowIfNull(sk);
        // The program is read and run inside one read-side section: a detach that races the read cannot free what the
        // run uses (the kernel's rcu_dereference of reuse->prog).
        Maps.MapEpoch.Enter();
        try
        {
            return SelectInSection(sk, packet, out dropped);
        }
        finally
        {
            Maps.MapEpoch.Exit();
        }
    }

    Sock? SelectInSection(Sock sk, in Packet packet, out bool dropped)
    {
        dropped = false;
        var members = Volatile.Read(ref _members);
        uint hash = packet.FlowHash ?? packet.Hash();
        var attached = Volatile.Read(ref _program);
        if (attached is SkReuseport.ClassicFilter filter)
        {
            // run_bpf_filter: the return value indexes socks[]; past the end (or a failed pull) the hash decides.
            if (filter.Run(packet, hash) is uint index && index < (uint)members.Length) return members[index];
        }
        else if (attached is SkReuseport.SkReuseportProgram program)
        {
            var d = program.Select(this, sk, packet, hash);
            if (d.Action == ReuseportAction.Drop)
            {
                dropped = true;
                return null;
            }
            if (d.Action == ReuseportAction.Select && d.Socket is { IsClosed: false } selected) return selected;
        }
        else if (Selector is { } selector)
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
        return SelectByHash(members, hash, packet);
    }

    /// <summary>
    /// The hash's pick alone (<c>reuseport_select_sock_by_hash</c>), where the group delivers when no program chose:
    /// <c>reciprocal_scale(hash, n)</c> over the members, walking past those that cannot receive
    /// <paramref name="packet"/> (not listening or bound, connected, bound to another device); null when none can.
    /// No program or selector runs.
    /// </summary>
    public Sock? SelectByHash(uint hash, in Packet packet) => SelectByHash(Volatile.Read(ref _members), hash, packet);

    Sock? SelectByHash(Sock[] members, uint hash, in Packet packet) => ByHash(members, hash, packet.Cpu, packet, receivers: true);

    // reuseport_select_sock_by_hash: from reciprocal_scale(hash, n), the first member that can take the packet (with
    // receivers; without, for a listener's request, any of the listeners given), preferring one whose SO_INCOMING_CPU
    // is the CPU the packet is processed on (the kernel looks at CPUs only while some member set SO_INCOMING_CPU,
    // reuse->incoming_cpu; as only the option sets a member's CPU here, a match implies it). Null when none can.
    Sock? ByHash(Sock[] socks, uint hash, int? cpu, in Packet packet, bool receivers)
    {
        int n = socks.Length;
        if (n == 0) return null;
        int start = (int)(((ulong)hash * (ulong)n) >> 32);
        Sock? first = null;
        for (int k = 0; k < n; k++)
        {
            var m = socks[(start + k) % n];
            if (receivers && !(Receives(m) && OnDevice(m, packet) && m.State != SockState.Connected)) continue;
            if (cpu is not int c || m.IncomingCpu == c) return m;
            first ??= m;
        }
        return first;
    }

    /// <summary>
    /// <c>reuseport_migrate_sock</c> for one request of <paramref name="closing"/>, a listener that already left the group
    /// (its close): with a program loaded for <c>BPF_SK_REUSEPORT_SELECT_OR_MIGRATE</c> attached, the program runs with
    /// <c>ctx-&gt;sk</c> the closing listener and <c>ctx-&gt;migrating_sk</c> the request on an empty packet; anything
    /// but SK_PASS resets the request, a selection takes it; without such a program the request migrates only under
    /// <paramref name="migrateReq"/> (<c>net.ipv4.tcp_migrate_req</c>). Where nothing was selected, the request's hash
    /// picks among the listeners (<c>reuseport_select_sock_by_hash</c>). The chosen socket must still listen
    /// (<c>inet_csk_reqsk_queue_add</c>); null: the connection is reset.
    /// </summary>
    internal Sock? Migrate(Sock closing, in MigratingRequest request, bool migrateReq, Packet? ack = null)
    {
        var listeners = Array.FindAll(Volatile.Read(ref _members), m => m.State == SockState.Listening);
        if (listeners.Length == 0) return null;
        Sock? target = null;
        // A classic filter has no expected attach type: as no program, the sysctl decides.
        var program = Volatile.Read(ref _program) as SkReuseport.SkReuseportProgram;
        if (program is { ExpectedAttachType: Frontend.Elf.AttachType.SkReuseportSelectOrMigrate })
        {
            var d = program.Migrate(this, closing, request, ack);
            if (d.Action == ReuseportAction.Drop) return null;
            if (d.Action == ReuseportAction.Select) target = d.Socket;
        }
        else if (!migrateReq)
        {
            return null;
        }
        target ??= ByHash(listeners, request.Hash, ack?.Cpu, default, receivers: false);
        return target is { State: SockState.Listening } ? target : null;
    }

    /// <summary>
    /// Whether a TCP listener closing now would keep this group (<c>reuseport_stop_listen_sock</c>): with
    /// <paramref name="migrateReq"/> (<c>net.ipv4.tcp_migrate_req</c>) or a program loaded for
    /// <c>BPF_SK_REUSEPORT_SELECT_OR_MIGRATE</c> attached, it moves to the group's closed section, so its requests can
    /// still migrate at their final ACK; otherwise it leaves the group (<c>reuseport_detach_sock</c>).
    /// </summary>
    internal bool MigrationCapable(bool migrateReq) => migrateReq
        || Volatile.Read(ref _program) is SkReuseport.SkReuseportProgram { ExpectedAttachType: Frontend.Elf.AttachType.SkReuseportSelectOrMigrate };

    static bool OnDevice(Sock m, in Packet packet) => m.BoundDevice == 0 || m.BoundDevice == packet.IngressIfindex;

    bool Receives(Sock m) => m.State == (Protocol == SocketProtocol.Tcp ? SockState.Listening : SockState.Bound)
        || (Protocol == SocketProtocol.Udp && m.State == SockState.Connected);
}
