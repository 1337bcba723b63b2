using BpfJit.Runtime.Maps;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Runtime.Sockets;

/// <summary>
/// BPF_MAP_TYPE_SOCKMAP (15): an array of sockets indexed by a u32 key. Kernel behaviour kept:
/// update with a key past max_entries is -E2BIG, delete of an empty or out-of-range slot -EINVAL,
/// lookup of either NULL (programs) or -ENOENT (userspace).
/// </summary>
public sealed unsafe class SockMap : SocketMapBase
{
    readonly Sock?[] _slots;
    // The slots' socket blocks (0 when empty), written with them: a program's lookup reads the block
    // address with one load fewer than through the Sock object.
    readonly nint[] _handles;

    internal SockMap(MapDefinition definition) : base(Checked(definition))
    {
        _slots = new Sock?[definition.MaxEntries];
        _handles = new nint[definition.MaxEntries];
    }

    static MapDefinition Checked(MapDefinition d)
    {
        Validate(d, hash: false);
        return d;
    }

    /// <summary>Puts <paramref name="socket"/> at <paramref name="index"/> (BPF_ANY/NOEXIST/EXIST).</summary>
    public int Update(uint index, Sock socket, ulong flags = UpdateFlags.Any)
    {
        ArgumentNullException.ThrowIfNull(socket);
        return Store(index, socket, flags);
    }

    /// <summary>The socket at <paramref name="index"/>, or null.</summary>
    public Sock? Get(uint index) => index < (uint)_slots.Length ? Volatile.Read(ref _slots[index]) : null;

    int Store(uint index, Sock? socket, ulong flags)
    {
        if (socket == null) return -Errno.EINVAL;
        int admitted = Admit(socket, flags);
        if (admitted != 0) return admitted;
        if (index >= (uint)_slots.Length) return -Errno.E2BIG;
        return Insert(socket, () =>
        {
            var old = _slots[index];
            if (old != null && flags == UpdateFlags.NoExist) return -Errno.EEXIST;
            if (old == null && flags == UpdateFlags.Exist) return -Errno.ENOENT;
            Volatile.Write(ref _slots[index], socket);
            Volatile.Write(ref _handles[index], socket.Handle);
            if (old != socket)
            {
                Link(socket);
                if (old != null) Unlink(old);
            }
            return 0;
        });
    }

    int Remove(uint index)
    {
        if (index >= (uint)_slots.Length) return -Errno.EINVAL;
        lock (Gate)
        {
            if (_slots[index] is not { } old) return -Errno.EINVAL;
            Unlink(old);
            Volatile.Write(ref _slots[index], null);
            Volatile.Write(ref _handles[index], 0);
            return 0;
        }
    }

    /// <inheritdoc />
    protected override void RemoveAll(Sock s)
    {
        for (int i = 0; i < _slots.Length; i++)
            if (_slots[i] == s)
            {
                Unlink(s);
                Volatile.Write(ref _slots[i], null);
                Volatile.Write(ref _handles[i], 0);
            }
    }

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr)
    {
        uint index = *(uint*)keyPtr;
        return index < (uint)_handles.Length ? Acquire(Volatile.Read(ref _handles[index])) : 0;
    }

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => Store(*(uint*)keyPtr, FromProgramValue(valuePtr), flags);

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => Remove(*(uint*)keyPtr);

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags) => WriteCookie(Get(*(uint*)key), value);

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        int err = SocketFromValue(value, out var s);
        return err != 0 ? err : Store(*(uint*)key, s, flags);
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => Remove(*(uint*)key);

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    /// <inheritdoc />
    public override IReadOnlyList<(byte[] Key, Sock Socket)> Sockets
    {
        get
        {
            var list = new List<(byte[], Sock)>();
            for (uint i = 0; i < _slots.Length; i++)
                if (Volatile.Read(ref _slots[i]) is { } s) list.Add((BitConverter.GetBytes(i), s));
            return list;
        }
    }
}
