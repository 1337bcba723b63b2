using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>
/// BPF_MAP_TYPE_REUSEPORT_SOCKARRAY (20): an array of SO_REUSEPORT sockets that an SK_REUSEPORT program selects from
/// with <c>bpf_sk_select_reuseport</c> (kernel/bpf/reuseport_array.c). Userspace writes a socket by its cookie (the
/// runtime's stand-in for a file descriptor, u32 or u64 as value_size says, as <see cref="SockMap"/> takes it) and
/// reads back the cookie (value_size 8 only, else -ENOSPC). Only a socket in a reuseport group may go in: a TCP
/// listener or a bound, unconnected UDP socket (a connect takes it out of its group and of this map), and in one slot of one such map at a time (the kernel's
/// <c>sk_user_data</c>: -EBUSY otherwise). A socket that closes leaves the map at once.
/// </summary>
public sealed unsafe class ReuseportSockArray : BpfMap
{
    readonly Sock?[] _slots;
    // The slots' socket blocks (0 when empty), written with them: the helper reads a block address with one load.
    readonly nint[] _handles;
    readonly Lock _gate = new();
    readonly Action<Sock> _onClose;

    internal ReuseportSockArray(MapDefinition definition) : base(definition)
    {
        _slots = new Sock?[definition.MaxEntries];
        _handles = new nint[definition.MaxEntries];
        _onClose = s =>
        {
            lock (_gate) Detach(s);
        };
    }

    /// <summary>Makes <see cref="MapFactory"/> create REUSEPORT_SOCKARRAY maps (idempotent).</summary>
    public static void Register() => MapFactory.Register(MapType.ReuseportSockArray, d => new ReuseportSockArray(d));

    /// <summary>The socket at <paramref name="index"/>, or null.</summary>
    public Sock? Get(uint index) => index < (uint)_slots.Length ? Volatile.Read(ref _slots[index]) : null;

    /// <summary>
    /// <c>bpf_fd_reuseport_array_update_elem</c> with a socket: flags above BPF_EXIST -EINVAL, an index past
    /// max_entries -E2BIG, then <see cref="UpdateCheck"/>.
    /// </summary>
    public int Update(uint index, Sock socket, ulong flags = UpdateFlags.Any)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (flags > UpdateFlags.Exist) return -Errno.EINVAL;
        if (index >= (uint)_slots.Length) return -Errno.E2BIG;
        return Store(index, socket, flags);
    }

    /// <summary>
    /// <c>reuseport_array_update_check</c>, in the kernel's order: an occupied slot with BPF_NOEXIST -EEXIST, an empty
    /// one with BPF_EXIST -ENOENT; a socket that is not hashed in a reuseport group (a TCP socket that is not
    /// listening, an unbound or closed one, one without SO_REUSEPORT) -EINVAL; a socket already held by a
    /// REUSEPORT_SOCKARRAY slot (this one included) or by a SOCKMAP/SOCKHASH entry -EBUSY.
    /// </summary>
    static int UpdateCheck(Sock nsk, Sock? osk, ulong flags)
    {
        if (osk != null && flags == UpdateFlags.NoExist) return -Errno.EEXIST;
        if (osk == null && flags == UpdateFlags.Exist) return -Errno.ENOENT;
        if (!InGroup(nsk)) return -Errno.EINVAL;
        // sk_user_data: a REUSEPORT_SOCKARRAY slot, or the psock of a SOCKMAP/SOCKHASH entry.
        if (Volatile.Read(ref nsk.UserData) != null || Volatile.Read(ref nsk.SockMapLinks) > 0) return -Errno.EBUSY;
        return 0;
    }

    /// <summary>
    /// True when the socket is hashed with a reuseport group, as the kernel's <c>sk_reuseport_cb</c> is set: a TCP
    /// listener or a bound (or connected) UDP socket that joined a group. (A TCP socket joins its group at listen; one
    /// that does not listen may hold a group of its own from an attach, which does not make it hashed.)
    /// </summary>
    internal static bool InGroup(Sock s) => s.ReuseportGroup != null && s.State switch
    {
        SockState.Listening => true,
        SockState.Bound or SockState.Connected => s.Protocol == SocketProtocol.Udp,
        _ => false,
    };

    int Store(uint index, Sock socket, ulong flags)
    {
        // The quick check before the locks, as the kernel makes it, then the same check under them.
        int err = UpdateCheck(socket, Get(index), flags);
        if (err != 0) return err;
        int result = 0;
        bool open = socket.WhileOpen(() =>
        {
            lock (_gate)
            {
                var old = _slots[index];
                result = UpdateCheck(socket, old, flags);
                if (result != 0) return;
                Volatile.Write(ref socket.UserData, this);
                Volatile.Write(ref _slots[index], socket);
                Volatile.Write(ref _handles[index], socket.Handle);
                if (old != null)
                {
                    Volatile.Write(ref old.UserData, null);
                    old.RemoveOnClose(_onClose);
                }
            }
        }, _onClose);
        // sockfd_lookup on a descriptor closed meanwhile.
        return open ? result : -Errno.EBADF;
    }

    /// <summary><c>bpf_sk_reuseport_detach</c>: <paramref name="s"/> left its reuseport group (a UDP connect), so it leaves its slot.</summary>
    internal void Unlink(Sock s)
    {
        lock (_gate) Detach(s);
        s.RemoveOnClose(_onClose);
    }

    // Under _gate: the socket leaves its slot (close, or the map's end).
    void Detach(Sock s)
    {
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i] != s) continue;
            Volatile.Write(ref _slots[i], null);
            Volatile.Write(ref _handles[i], 0);
        }
        if (Volatile.Read(ref s.UserData) == this) Volatile.Write(ref s.UserData, null);
    }

    /// <summary>
    /// A program's lookup (what <c>bpf_sk_select_reuseport</c> calls <c>map_lookup_elem</c> for): the socket block, or 0.
    /// No reference is taken: every socket here is RCU-freed (a listener or a bound UDP socket).
    /// </summary>
    public override ulong LookupElem(ulong keyPtr)
    {
        uint index = *(uint*)keyPtr;
        return index < (uint)_handles.Length ? (ulong)Volatile.Read(ref _handles[index]) : 0;
    }

    /// <summary><c>bpf_fd_reuseport_array_lookup_elem</c>: value_size 4 is -ENOSPC, an empty slot -ENOENT, else the cookie.</summary>
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        if (ValueSize != 8) return -Errno.ENOSPC;
        if (Get(*(uint*)key) is not { } s) return -Errno.ENOENT;
        *(ulong*)value = s.Cookie;
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        uint index = *(uint*)key;
        if (flags > UpdateFlags.Exist) return -Errno.EINVAL;
        if (index >= (uint)_slots.Length) return -Errno.E2BIG;
        ulong id = ValueSize == 8 ? *(ulong*)value : *(uint*)value;
        // An fd above S32_MAX is -EINVAL before any lookup; a u32 value is read as an int fd (negative: -EBADF).
        if (ValueSize == 8 && id > int.MaxValue) return -Errno.EINVAL;
        if (Sock.FromCookie(id) is not { } s) return -Errno.EBADF;
        return Store(index, s, flags);
    }

    /// <summary><c>reuseport_array_delete_elem</c>: an index past max_entries -E2BIG, an empty slot -ENOENT.</summary>
    protected override int DeleteCore(byte* key)
    {
        uint index = *(uint*)key;
        if (index >= (uint)_slots.Length) return -Errno.E2BIG;
        lock (_gate)
        {
            if (_slots[index] is not { } s) return -Errno.ENOENT;
            Volatile.Write(ref _slots[index], null);
            Volatile.Write(ref _handles[index], 0);
            Volatile.Write(ref s.UserData, null);
            s.RemoveOnClose(_onClose);
            return 0;
        }
    }

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        // reuseport_array_free: every socket still held is released for another map.
        Sock[] held;
        lock (_gate)
        {
            held = [.. _slots.Where(s => s != null)!];
            foreach (var s in held) Detach(s);
        }
        foreach (var s in held) s.RemoveOnClose(_onClose);
    }

    /// <summary>The sockets in the map by index, for userspace inspection.</summary>
    public IReadOnlyList<(uint Index, Sock Socket)> Sockets
    {
        get
        {
            var list = new List<(uint, Sock)>();
            for (uint i = 0; i < _slots.Length; i++)
                if (Volatile.Read(ref _slots[i]) is { } s) list.Add((i, s));
            return list;
        }
    }
}

/// <summary>Registers REUSEPORT_SOCKARRAY with <see cref="MapFactory"/> when the assembly loads.</summary>
static class ReuseportSockArrayRegistration
{
#pragma warning disable CA2255 // A library-level registration into the map factory is exactly what a module initializer is for.
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Init() => ReuseportSockArray.Register();
#pragma warning restore CA2255
}
