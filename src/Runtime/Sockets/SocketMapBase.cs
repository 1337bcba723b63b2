using System.Runtime.CompilerServices;
using BpfJit.Runtime.Maps;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Runtime.Sockets;

/// <summary>
/// What SOCKMAP and SOCKHASH share: values are sockets. Userspace writes a socket by its cookie
/// (the runtime's stand-in for a file descriptor, u32 or u64 as value_size says) and reads back
/// the cookie (value_size 8 only, else -ENOSPC). Programs get a referenced socket pointer from
/// bpf_map_lookup_elem and may insert a socket pointer with bpf_map_update_elem. A socket that
/// closes leaves the map at once.
/// </summary>
public abstract unsafe class SocketMapBase : BpfMap
{
    /// <summary>Serialises writers; readers take no lock.</summary>
    protected readonly Lock Gate = new();
    readonly Action<Sock> _onClose;
    readonly HashSet<Sock> _watched = [];

    /// <summary>Creates the map.</summary>
    protected SocketMapBase(MapDefinition definition) : base(definition) => _onClose = s =>
    {
        lock (Gate)
        {
            RemoveAll(s);
            _watched.Remove(s);
        }
    };

    /// <summary>Makes <see cref="MapFactory"/> create SOCKMAP and SOCKHASH maps (idempotent).</summary>
    public static void Register()
    {
        MapFactory.Register(MapType.SockMap, d => new SockMap(d));
        MapFactory.Register(MapType.SockHash, d => new SockHash(d));
    }

    /// <summary>Throws like BPF_MAP_CREATE for bad SOCKMAP/SOCKHASH attributes.</summary>
    protected static void Validate(MapDefinition d, bool hash)
    {
        const uint allowed = MapFlags.NumaNode | MapFlags.ReadOnly | MapFlags.WriteOnly;
        if (d.MaxEntries == 0 || (d.ValueSize != 4 && d.ValueSize != 8) || (d.Flags & ~allowed) != 0)
            throw new MapCreateException(d.Name, d.Type, Errno.EINVAL, "max_entries must be non-zero, value_size 4 or 8, flags NUMA_NODE/RDONLY/WRONLY only");
        if (!hash && d.KeySize != 4) throw new MapCreateException(d.Name, d.Type, Errno.EINVAL, $"key_size must be 4, not {d.KeySize}");
        if (hash && d.KeySize == 0) throw new MapCreateException(d.Name, d.Type, Errno.EINVAL, "key_size must be non-zero");
        if (hash && d.KeySize > MapFactory.MaxKeySize) throw new MapCreateException(d.Name, d.Type, Errno.E2BIG, $"key_size {d.KeySize} exceeds {MapFactory.MaxKeySize}");
        if (d.SpinLockOffset >= 0) throw new MapCreateException(d.Name, d.Type, Errno.EINVAL, "socket maps cannot hold a bpf_spin_lock");
    }

    /// <summary>
    /// <c>sock_map_sk_state_allowed</c>: a TCP socket must be listening or established, a UDP socket hashed
    /// (bound or connected; an unbound one is not in the UDP table): -EOPNOTSUPP otherwise; a closed socket is -EBADF.
    /// </summary>
    public static int CheckSocket(Sock? s)
    {
        if (s == null || s.IsClosed) return -Errno.EBADF;
        if (s.Protocol == SocketProtocol.Tcp && s.State is not (SockState.Listening or SockState.Connected)) return -Errno.EOPNOTSUPP;
        if (s.Protocol == SocketProtocol.Udp && s.State == SockState.Unbound) return -Errno.EOPNOTSUPP;
        return 0;
    }

    /// <summary>
    /// The checks of an update before its index or key, in <c>sock_map_update_elem</c>'s order: the socket's kind and
    /// state (<see cref="CheckSocket"/>), then the flags (<c>sock_map_update_common</c>: -EINVAL above BPF_EXIST). An
    /// unlisted TCP socket with bad flags is -EOPNOTSUPP, as the live kernel answers (<c>SocketMapStateKernelTests</c>).
    /// </summary>
    private protected static int Admit(Sock socket, ulong flags)
    {
        int state = CheckSocket(socket);
        if (state != 0) return state;
        return flags > UpdateFlags.Exist ? -Errno.EINVAL : 0;
    }

    /// <summary>
    /// Inserts <paramref name="s"/>, which <see cref="Admit"/> let through, by <paramref name="store"/> (run under the map
    /// lock while the socket cannot close).
    /// </summary>
    protected int Insert(Sock s, Func<int> store)
    {
        // sk_psock_init: sk_user_data is taken by a REUSEPORT_SOCKARRAY slot.
        if (Volatile.Read(ref s.UserData) != null) return -Errno.EBUSY;
        int result = 0;
        bool open = s.WhileOpen(() =>
        {
            lock (Gate)
            {
                result = store();
                if (result == 0) _watched.Add(s);
            }
        }, _onClose);
        return open ? result : -Errno.EBADF;
    }

    /// <summary>An entry now holds <paramref name="s"/> (under <see cref="Gate"/>): a psock link.</summary>
    private protected static void Link(Sock s) => Interlocked.Increment(ref s.SockMapLinks);

    /// <summary>An entry no longer holds <paramref name="s"/> (under <see cref="Gate"/>): the link goes, and with the last one the psock.</summary>
    private protected static void Unlink(Sock s) => Interlocked.Decrement(ref s.SockMapLinks);

    /// <summary>Removes every entry holding <paramref name="s"/> (called under <see cref="Gate"/>).</summary>
    protected abstract void RemoveAll(Sock s);

    /// <summary>The socket a userspace value names (its cookie as u32 or u64), or an errno.</summary>
    protected int SocketFromValue(byte* value, out Sock? s)
    {
        ulong id = ValueSize == 8 ? *(ulong*)value : *(uint*)value;
        s = null;
        // sock_map_update_elem_sys: the value is an fd, and one above S32_MAX is EINVAL before any lookup.
        if (id > int.MaxValue) return -Errno.EINVAL;
        s = Sock.FromCookie(id);
        return s == null ? -Errno.EBADF : 0;
    }

    /// <summary>Writes a userspace lookup result: the cookie when value_size is 8, else -ENOSPC.</summary>
    protected int WriteCookie(Sock? s, byte* value)
    {
        if (s == null) return -Errno.ENOENT;
        if (ValueSize != 8) return -Errno.ENOSPC;
        *(ulong*)value = s.Cookie;
        return 0;
    }

    /// <summary>The program's value for a found socket block (0: none): its address, referenced when the socket is refcounted.</summary>
    // Inlined into JIT-compiled programs: a DynamicMethod is compiled once, fully optimised but without
    // profile data, and RyuJIT's inliner then leaves this call out of line (docs/perf.md, branch jitgap).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected static ulong Acquire(nint handle)
    {
        if (handle == 0) return 0;
        Sock.AddRef(handle);
        return (ulong)handle;
    }

    /// <summary>The socket behind a program's value pointer (a socket pointer), or null.</summary>
    protected static Sock? FromProgramValue(ulong valuePtr) => valuePtr == 0 ? null : Sock.FromHandle((nint)valuePtr);

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        Sock[] watched;
        lock (Gate)
        {
            // sock_map_free / sock_hash_free: every entry's link goes.
            foreach (var (_, s) in Sockets) Unlink(s);
            watched = [.. _watched];
            _watched.Clear();
        }
        foreach (var s in watched) s.RemoveOnClose(_onClose);
    }

    /// <summary>The sockets in the map, for userspace inspection.</summary>
    public abstract IReadOnlyList<(byte[] Key, Sock Socket)> Sockets { get; }
}

/// <summary>Registers SOCKMAP and SOCKHASH with <see cref="MapFactory"/> when the assembly loads.</summary>
static class SocketMapRegistration
{
#pragma warning disable CA2255 // A library-level registration into the map factory is exactly what a module initializer is for.
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Init() => SocketMapBase.Register();
#pragma warning restore CA2255
}
