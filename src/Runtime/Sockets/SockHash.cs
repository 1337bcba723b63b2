using System.Collections.Concurrent;
using BpfJit.Runtime.Maps;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Runtime.Sockets;

/// <summary>
/// BPF_MAP_TYPE_SOCKHASH (18): sockets under arbitrary fixed-size keys. Update of a new key in a
/// full map is -E2BIG, delete of a missing key -ENOENT. Programs look keys up without locking or
/// allocating (the dictionary is probed with the key bytes in place).
/// </summary>
public sealed unsafe class SockHash : SocketMapBase
{
    sealed class KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(byte[] obj) => Hash(obj);
        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);
        public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);
        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();

        static int Hash(ReadOnlySpan<byte> bytes)
        {
            var h = new HashCode();
            h.AddBytes(bytes);
            return h.ToHashCode();
        }
    }

    readonly ConcurrentDictionary<byte[], Sock> _map = new(new KeyComparer());
    readonly ConcurrentDictionary<byte[], Sock>.AlternateLookup<ReadOnlySpan<byte>> _bySpan;

    internal SockHash(MapDefinition definition) : base(Checked(definition)) => _bySpan = _map.GetAlternateLookup<ReadOnlySpan<byte>>();

    static MapDefinition Checked(MapDefinition d)
    {
        Validate(d, hash: true);
        return d;
    }

    /// <summary>Puts <paramref name="socket"/> under <paramref name="key"/> (BPF_ANY/NOEXIST/EXIST).</summary>
    public int Update(ReadOnlySpan<byte> key, Sock socket, ulong flags = UpdateFlags.Any)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (key.Length != KeySize) throw new ArgumentException($"map {Name}: key is {key.Length} bytes, the map needs {KeySize}", nameof(key));
        fixed (byte* k = key) return Store(k, socket, flags);
    }

    /// <summary>The socket under <paramref name="key"/>, or null.</summary>
    public Sock? Get(ReadOnlySpan<byte> key) => _bySpan.TryGetValue(key, out var s) ? s : null;

    int Store(byte* key, Sock? socket, ulong flags)
    {
        if (socket == null) return -Errno.EINVAL;
        int admitted = Admit(socket, flags);
        if (admitted != 0) return admitted;
        var k = new ReadOnlySpan<byte>(key, KeySize).ToArray();
        return Insert(socket, () =>
        {
            bool exists = _map.TryGetValue(k, out var old);
            if (exists && flags == UpdateFlags.NoExist) return -Errno.EEXIST;
            if (!exists && flags == UpdateFlags.Exist) return -Errno.ENOENT;
            if (!exists && _map.Count >= MaxEntries) return -Errno.E2BIG;
            // A new entry is charged as the kernel's sock_hash_alloc_elem charges its element; a replacement reuses it.
            if (!exists && !ChargeElement(ElementCharge)) return -Runtime.Errno.ENOMEM;
            _map[k] = socket;
            if (old != socket)
            {
                Link(socket);
                if (old != null) Unlink(old);
            }
            return 0;
        });
    }

    int Remove(byte* key)
    {
        lock (Gate)
        {
            if (!_bySpan.TryRemove(new ReadOnlySpan<byte>(key, KeySize), out _, out var removed)) return -Errno.ENOENT;
            Unlink(removed);
            UnchargeElement(ElementCharge);
            return 0;
        }
    }

    /// <summary>An entry's charge: the kernel's element (48 bytes of links, hash and socket) and the key, rounded to 8.</summary>
    long ElementCharge => 48 + ((KeySize + 7L) & ~7L);

    /// <inheritdoc />
    protected override void RemoveAll(Sock s)
    {
        foreach (var kv in _map)
            if (kv.Value == s && _map.TryRemove(kv))
            {
                UnchargeElement(ElementCharge);
                Unlink(s);
            }
    }

    /// <inheritdoc />
    public override ulong LookupElem(ulong keyPtr) => Acquire(Get(new ReadOnlySpan<byte>((void*)keyPtr, KeySize))?.Handle ?? 0);

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => Store((byte*)keyPtr, FromProgramValue(valuePtr), flags);

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => Remove((byte*)keyPtr);

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags) => WriteCookie(Get(new ReadOnlySpan<byte>(key, KeySize)), value);

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        int err = SocketFromValue(value, out var s);
        return err != 0 ? err : Store(key, s, flags);
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => Remove(key);

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey)
    {
        var keys = _map.Keys.ToArray();
        int at = 0;
        if (key != null)
        {
            var current = new ReadOnlySpan<byte>(key, KeySize).ToArray();
            int found = Array.FindIndex(keys, k => current.AsSpan().SequenceEqual(k));
            at = found < 0 ? 0 : found + 1;
        }
        if (at >= keys.Length) return -Errno.ENOENT;
        keys[at].CopyTo(new Span<byte>(nextKey, KeySize));
        return 0;
    }

    /// <inheritdoc />
    public override IReadOnlyList<(byte[] Key, Sock Socket)> Sockets => _map.Select(kv => (kv.Key.ToArray(), kv.Value)).ToArray();
}
