using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// A live map: its attributes, a userspace API and the program-side operations the helpers call.
/// <para>
/// Error convention: every operation returns 0 (or a non-negative result) on success and a negated
/// kernel errno on failure (<c>-Errno.ENOENT</c>), exactly as the <c>bpf()</c> syscall would: including
/// -EPERM for reads of a BPF_F_WRONLY map and writes to a BPF_F_RDONLY or frozen one. Only caller
/// bugs throw: a key or value span of the wrong length (<see cref="ArgumentException"/>), or use after
/// <see cref="Dispose()"/> (<see cref="ObjectDisposedException"/>). Creation errors throw
/// <see cref="MapCreateException"/>.
/// </para>
/// <para>
/// <see cref="Handle"/> is what a program holds as the map pointer. It points to a 64-byte native header:
/// <c>+0 i32</c> registry index (resolved by <see cref="FromHandle"/> with two loads), <c>+4 u32</c> type,
/// <c>+8 u32</c> key_size, <c>+12 u32</c> value_size, <c>+16 u32</c> max_entries, <c>+20 u32</c> flags,
/// <c>+24 u64</c> the base of the value area for ARRAY maps (0 otherwise).
/// </para>
/// <para>
/// Lifetimes are the kernel's: a map is reference counted, and its memory goes with the last reference.
/// The owner holds one (dropped by <see cref="Dispose()"/>, after which the userspace API throws
/// <see cref="ObjectDisposedException"/>); every loaded program that names the map holds one until it is
/// unloaded (<c>SkLookupProgram.Dispose</c> and the detach of its last link), as the kernel's
/// <c>used_maps</c> do; every map-in-map slot holding the map holds one. Disposing a map a program still
/// uses only ends the owner's use: the program keeps reading and writing it.
/// </para>
/// </summary>
public abstract unsafe class BpfMap : IDisposable
{
    /// <summary>Size of the native header behind <see cref="Handle"/>.</summary>
    public const int HeaderSize = 64;

    /// <summary>Offset in the header of the ARRAY value base.</summary>
    public const int HeaderDataOffset = 24;

    static BpfMap?[] s_registry = new BpfMap?[16];
    static readonly Stack<int> s_freeIndexes = new();
    static int s_used;
    static int s_lastId;
    static readonly Lock s_registryLock = new();

    readonly byte* _header;
    readonly int _index;
    int _disposed;
    int _frozen;
    // The owner's reference, one per loaded program naming the map, one per map-in-map slot holding it; memory
    // goes when it reaches 0.
    int _refs = 1;
    // The bytes MapFactory charged to MapMemory for this map, returned when its memory is freed.
    long _charge;

    /// <summary>Creates a map and registers its handle. Attributes must already be validated (see <see cref="MapFactory"/>).</summary>
    protected BpfMap(MapDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        Definition = definition;
        Id = (uint)Interlocked.Increment(ref s_lastId);
        _header = Native.Alloc(HeaderSize, HeaderSize);
        lock (s_registryLock)
        {
            if (!s_freeIndexes.TryPop(out _index))
            {
                if (s_used == s_registry.Length)
                {
                    var grown = new BpfMap?[s_registry.Length * 2];
                    s_registry.CopyTo(grown, 0);
                    Volatile.Write(ref s_registry, grown);
                }
                _index = s_used++;
            }
            Volatile.Write(ref s_registry[_index], this);
        }
        *(int*)_header = _index;
        *(uint*)(_header + 4) = (uint)definition.Type;
        *(uint*)(_header + 8) = (uint)definition.KeySize;
        *(uint*)(_header + 12) = (uint)definition.ValueSize;
        *(uint*)(_header + 16) = (uint)definition.MaxEntries;
        *(uint*)(_header + 20) = definition.Flags;
    }

    /// <summary>The attributes the map was created with.</summary>
    public MapDefinition Definition { get; }

    /// <summary>The map's name.</summary>
    public string Name => Definition.Name;

    /// <summary>
    /// The map's id, unique in the process, never reused (the kernel's map id): what a map-in-map's
    /// userspace lookup returns and its byte-API update takes in place of the kernel's map fd.
    /// </summary>
    public uint Id { get; }

    /// <summary>The live (not disposed) map with id <paramref name="id"/>, or null: the kernel's fd-to-map step of an update of a map-in-map.</summary>
    public static BpfMap? FromId(uint id)
    {
        foreach (var map in Volatile.Read(ref s_registry))
            if (map is { IsDisposed: false } && map.Id == id) return map;
        return null;
    }

    /// <summary>The map type.</summary>
    public MapType Type => Definition.Type;

    /// <summary>Key size in bytes.</summary>
    public int KeySize => Definition.KeySize;

    /// <summary>Value size in bytes (per CPU for per-CPU maps).</summary>
    public int ValueSize => Definition.ValueSize;

    /// <summary>Maximum number of entries (the byte size for RINGBUF).</summary>
    public int MaxEntries => Definition.MaxEntries;

    /// <summary>The BPF_F_* creation flags.</summary>
    public uint Flags => Definition.Flags;

    /// <summary>Offset of a 4-byte bpf_spin_lock in the value, or -1 (known from BTF; enables BPF_F_LOCK).</summary>
    public int SpinLockOffset => Definition.SpinLockOffset;

    /// <summary>Offset of a 16-byte bpf_timer in the value, or -1 (known from BTF; see <see cref="BpfTimers"/>).</summary>
    public int TimerOffset => Definition.TimerOffset;

    /// <summary>The value's kptr fields (see <see cref="MapDefinition.Kptrs"/>): empty when it has none.</summary>
    public IReadOnlyList<KptrField> Kptrs => Definition.Kptrs ?? [];

    /// <summary>The size of a value in the userspace API: <see cref="ValueSize"/>, or all CPUs' slots for per-CPU maps.</summary>
    public virtual int UserValueSize => ValueSize;

    /// <summary>The map pointer programs hold (the address of the native header).</summary>
    public ulong Handle => (ulong)_header;

    /// <summary>True once <see cref="Freeze"/> was called: userspace can no longer write.</summary>
    public bool IsFrozen => Volatile.Read(ref _frozen) != 0;

    /// <summary>
    /// BPF_MAP_FREEZE: from now on userspace updates and deletes fail with -EPERM (programs are unaffected;
    /// loaders freeze <c>.rodata</c> after filling it). Returns 0; -ENOTSUPP for a map whose value holds a
    /// bpf_spin_lock; -EPERM when userspace cannot write the map (BPF_F_RDONLY, or already frozen: a frozen map
    /// has lost its write permission, so a second freeze is refused as the kernel's is).
    /// </summary>
    public int Freeze()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (SpinLockOffset >= 0) return -Errno.ENOTSUPP;
        if ((Flags & MapFlags.ReadOnly) != 0) return -Errno.EPERM;
        return Interlocked.Exchange(ref _frozen, 1) == 0 ? 0 : -Errno.EPERM;
    }

    bool UserCanRead => (Flags & MapFlags.WriteOnly) == 0;

    bool UserCanWrite => (Flags & MapFlags.ReadOnly) == 0 && !IsFrozen;

    /// <summary>True once disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// True while programs may still reach the map: until its owner disposed it and no map-in-map holds it
    /// (a disposed map stored in an outer map is still live).
    /// </summary>
    public bool IsLive => Volatile.Read(ref _refs) > 0;

    /// <summary>Resolves a program's map pointer to its map: two dependent loads, no lookup structure.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BpfMap FromHandle(ulong handle) => s_registry[*(int*)handle]!;

    /// <summary>
    /// The live map whose handle is <paramref name="handle"/>, found without reading memory at the handle
    /// (it may be any number an unverified program passed): false when no live map has that handle.
    /// </summary>
    public static bool TryFromHandle(ulong handle, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BpfMap? map)
    {
        foreach (var m in Volatile.Read(ref s_registry))
            if (m is { IsLive: true } && m.Handle == handle) { map = m; return true; }
        map = null;
        return false;
    }

    /// <summary>Stores the value-area base in the header (ARRAY maps, for direct value access by a JIT).</summary>
    protected void SetHeaderData(void* data) => *(ulong*)(_header + HeaderDataOffset) = (ulong)data;

    // ---- userspace API -------------------------------------------------------------------------

    /// <summary>Copies the value of <paramref name="key"/> into <paramref name="value"/> (<see cref="UserValueSize"/> bytes). 0, -ENOENT, -EINVAL.</summary>
    public int Lookup(ReadOnlySpan<byte> key, Span<byte> value, ulong flags = 0)
    {
        CheckKey(key);
        CheckSpan(value.Length, UserValueSize, nameof(value));
        // map_lookup_elem: unknown flags, then the read permission, then BPF_F_LOCK without a lock.
        if ((flags & ~UpdateFlags.Lock) != 0) return -Errno.EINVAL;
        if (!UserCanRead) return -Errno.EPERM;
        if ((flags & UpdateFlags.Lock) != 0 && SpinLockOffset < 0) return -Errno.EINVAL;
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            MapEpoch.Enter();
            try { return LookupCore(k, v, flags); }
            finally { MapEpoch.Exit(); }
        }
    }

    /// <summary>Creates or replaces an element (<paramref name="flags"/>: BPF_ANY, BPF_NOEXIST, BPF_EXIST, optionally BPF_F_LOCK).</summary>
    public int Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = UpdateFlags.Any)
    {
        CheckKey(key);
        CheckSpan(value.Length, UserValueSize, nameof(value));
        // map_update_elem: the write permission, then BPF_F_LOCK on a value without a lock, before the map type.
        if (!UserCanWrite) return -Errno.EPERM;
        if ((flags & UpdateFlags.Lock) != 0 && SpinLockOffset < 0) return -Errno.EINVAL;
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            MapEpoch.Enter();
            try { return UpdateCore(k, v, flags); }
            finally { MapEpoch.Exit(); }
        }
    }

    /// <summary>
    /// BPF_MAP_LOOKUP_AND_DELETE_ELEM: copies the value of <paramref name="key"/> into <paramref name="value"/> and removes
    /// it (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH: the value as <see cref="Lookup(ReadOnlySpan{byte}, Span{byte}, ulong)"/>
    /// gives it); for a QUEUE or STACK (no key) pops the front value. 0, -ENOENT, -EINVAL for flags (any flag on a QUEUE or
    /// STACK, BPF_F_LOCK without a lock), -EPERM unless userspace may both read and write the map, -ENOTSUPP for the
    /// other map types, as the kernel.
    /// </summary>
    public int LookupAndDelete(ReadOnlySpan<byte> key, Span<byte> value, ulong flags = 0)
    {
        CheckKey(key);
        CheckSpan(value.Length, UserValueSize, nameof(value));
        // map_lookup_and_delete_elem: unknown flags, both permissions, then flags a QUEUE/STACK or a lock-less value refuses.
        if ((flags & ~UpdateFlags.Lock) != 0) return -Errno.EINVAL;
        if (!UserCanRead || !UserCanWrite) return -Errno.EPERM;
        if (flags != 0 && Type is MapType.Queue or MapType.Stack) return -Errno.EINVAL;
        if ((flags & UpdateFlags.Lock) != 0 && SpinLockOffset < 0) return -Errno.EINVAL;
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            MapEpoch.Enter();
            try { return LookupAndDeleteCore(k, v, flags); }
            finally { MapEpoch.Exit(); }
        }
    }

    /// <summary>Deletes an element: 0, -ENOENT, or -EINVAL for maps whose elements cannot be deleted (arrays).</summary>
    public int Delete(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        if (!UserCanWrite) return -Errno.EPERM;
        fixed (byte* k = key)
        {
            MapEpoch.Enter();
            try { return DeleteCore(k); }
            finally { MapEpoch.Exit(); }
        }
    }

    /// <summary>
    /// Writes the key after <paramref name="key"/> into <paramref name="nextKey"/>; an empty
    /// <paramref name="key"/> (or one not in the map) asks for the first key. -ENOENT after the last key.
    /// </summary>
    public int GetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        if (!key.IsEmpty) CheckKey(key);
        CheckSpan(nextKey.Length, KeySize, nameof(nextKey));
        if (!UserCanRead) return -Errno.EPERM;
        fixed (byte* k = key)
        fixed (byte* n = nextKey)
        {
            MapEpoch.Enter();
            try { return GetNextKeyCore(key.IsEmpty ? null : k, n); }
            finally { MapEpoch.Exit(); }
        }
    }

    /// <summary>Every key, in <see cref="GetNextKey"/> order (a snapshot walk: concurrent changes may show or not).</summary>
    public IEnumerable<byte[]> Keys()
    {
        byte[] current = [];
        while (true)
        {
            var next = new byte[KeySize];
            if (GetNextKey(current, next) != 0) yield break;
            yield return next;
            current = next;
        }
    }

    /// <summary>Every element as (key, value), skipping keys deleted during the walk.</summary>
    public IEnumerable<KeyValuePair<byte[], byte[]>> Entries()
    {
        foreach (var key in Keys())
        {
            var value = new byte[UserValueSize];
            if (Lookup(key, value) == 0) yield return new(key, value);
        }
    }

    /// <summary>Typed <see cref="Lookup(ReadOnlySpan{byte}, Span{byte}, ulong)"/>: the key and value structs must have the map's sizes.</summary>
    public int Lookup<TKey, TValue>(in TKey key, out TValue value) where TKey : unmanaged where TValue : unmanaged
    {
        value = default;
        return Lookup(Bytes(in key), MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref value, 1)));
    }

    /// <summary>Typed <see cref="Update(ReadOnlySpan{byte}, ReadOnlySpan{byte}, ulong)"/>.</summary>
    public int Update<TKey, TValue>(in TKey key, in TValue value, ulong flags = UpdateFlags.Any) where TKey : unmanaged where TValue : unmanaged =>
        Update(Bytes(in key), Bytes(in value), flags);

    /// <summary>Typed <see cref="Delete(ReadOnlySpan{byte})"/>.</summary>
    public int Delete<TKey>(in TKey key) where TKey : unmanaged => Delete(Bytes(in key));

    static ReadOnlySpan<byte> Bytes<T>(in T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(MemoryMarshal.CreateReadOnlySpan(in value, 1));

    void CheckKey(ReadOnlySpan<byte> key) => CheckSpan(key.Length, KeySize, nameof(key));

    void CheckSpan(int length, int expected, string what)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (length != expected)
            throw new ArgumentException($"map {Name}: {what} is {length} bytes, the map needs {expected}", what);
    }

    /// <summary>Userspace lookup over native buffers, inside a read-side section.</summary>
    protected abstract int LookupCore(byte* key, byte* value, ulong flags);

    /// <summary>Userspace update over native buffers, inside a read-side section.</summary>
    protected abstract int UpdateCore(byte* key, byte* value, ulong flags);

    /// <summary>Userspace lookup-and-delete inside a read-side section: -ENOTSUPP unless the map type has one.</summary>
    protected virtual int LookupAndDeleteCore(byte* key, byte* value, ulong flags) => -Errno.ENOTSUPP;

    /// <summary>Userspace delete, inside a read-side section.</summary>
    protected abstract int DeleteCore(byte* key);

    /// <summary>Next-key walk; <paramref name="key"/> is null for the first key.</summary>
    protected abstract int GetNextKeyCore(byte* key, byte* nextKey);

    /// <summary>
    /// The next-key walk of every array-like map (u32 index keys): a missing or out-of-range key
    /// restarts at 0, the last index ends the walk with -ENOENT, as the kernel's array maps do.
    /// </summary>
    protected int ArrayNextKey(byte* key, byte* nextKey)
    {
        uint index = key == null ? uint.MaxValue : *(uint*)key;
        if (index >= (uint)MaxEntries)
        {
            *(uint*)nextKey = 0;
            return 0;
        }
        if (index == (uint)MaxEntries - 1) return -Errno.ENOENT;
        *(uint*)nextKey = index + 1;
        return 0;
    }

    // ---- program side (the helpers call these inside the run's read-side section) ----------------

    /// <summary>bpf_map_lookup_elem: the address of the value (this CPU's slot for per-CPU maps), or 0.</summary>
    public virtual ulong LookupElem(ulong keyPtr) => 0;

    /// <summary>bpf_map_lookup_percpu_elem: the address of <paramref name="cpu"/>'s slot of the value, or 0 (also for maps that are not per-CPU).</summary>
    public virtual ulong LookupPerCpuElem(ulong keyPtr, ulong cpu) => 0;

    /// <summary>bpf_map_update_elem from a program (per-CPU maps write this CPU's slot).</summary>
    public virtual long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => -Errno.EOPNOTSUPP;

    /// <summary>bpf_map_delete_elem from a program.</summary>
    public virtual long DeleteElem(ulong keyPtr) => -Errno.EOPNOTSUPP;

    /// <summary>
    /// bpf_for_each_map_elem: calls <c>callback(map, &amp;key, &amp;value, ctx, 0)</c> for each element
    /// until it returns non-zero; returns the number of calls, or -EINVAL when the type cannot be walked.
    /// </summary>
    public virtual long ForEachElem(BpfCallback callback, ulong callbackCtx) => -Errno.EINVAL;

    // ---- lifetime --------------------------------------------------------------------------------

    /// <summary>
    /// Ends the owner's use of the map. It is unregistered and its memory freed once no running program can
    /// read it and no map-in-map holds it.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        GC.SuppressFinalize(this);
        // The kernel's map_release_uref: the last user reference cancels and frees every timer in the map.
        BpfTimers.FreeAll(this);
        OnOwnerDisposed();
        Release();
    }

    /// <summary>
    /// The owner's reference is being dropped (the kernel's last user fd closing, while programs may still hold the
    /// map): a map that holds references on programs drops them here, as the kernel's PROG_ARRAY does.
    /// </summary>
    private protected virtual void OnOwnerDisposed() { }

    /// <summary>A map-in-map slot takes a reference (bpf_map_inc): the map stays alive while it is stored.</summary>
    internal void AddRef() => Interlocked.Increment(ref _refs);

    /// <summary>
    /// Takes a reference unless the last one is already gone (bpf_map_inc_not_zero): a program being loaded
    /// keeps the map alive from here until it is unloaded. False when the map's memory is already retired.
    /// </summary>
    internal bool TryAddRef() => RefCount.TryIncrementNotZero(ref _refs);

    /// <summary>
    /// The program's <c>used_maps</c> (<see cref="UsedBy"/>), each with a reference taken for the program; when one is
    /// already freed, the references taken so far are dropped and the load fails.
    /// </summary>
    internal static BpfMap[] HoldUsedBy(ReadOnlySpan<Frontend.Instruction> code, string programName)
    {
        var maps = UsedBy(code);
        for (int i = 0; i < maps.Count; i++)
        {
            if (maps[i].TryAddRef()) continue;
            for (int j = 0; j < i; j++) maps[j].Release();
            throw new ObjectDisposedException(maps[i].ToString(), $"program {programName}: map {maps[i].Name} is already freed");
        }
        return [.. maps];
    }

    /// <summary>
    /// Puts the references <see cref="HoldUsedBy"/> took, after a grace period (<see cref="MapEpoch.Retire(Action)"/>), as
    /// the kernel puts a program's <c>used_maps</c> from an RCU callback: a run that read the program before its last
    /// reference went may still be running it, and its maps must stay live (not only their memory) until that run ends.
    /// </summary>
    internal static void PutUsedAfterGrace(BpfMap[] maps)
    {
        if (maps.Length != 0)
            MapEpoch.Retire(() =>
            {
                foreach (var map in maps) map.Release();
            });
    }

    /// <summary>
    /// The maps a bound program's ld_imm64 constants point into: a map's handle, or an address in an ARRAY's
    /// value area (direct value access). A program's <c>used_maps</c>, recovered from its bound code.
    /// </summary>
    internal static List<BpfMap> UsedBy(ReadOnlySpan<Frontend.Instruction> code)
    {
        var used = new List<BpfMap>();
        var registry = Volatile.Read(ref s_registry);
        for (int i = 0; i + 1 < code.Length; i++)
        {
            if (!code[i].IsLdImm64) continue;
            ulong constant = (uint)code[i].Imm | (ulong)(uint)code[i + 1].Imm << 32;
            i++;
            if (constant == 0) continue;
            foreach (var map in registry)
                if (map is { IsLive: true } && (map.Handle == constant || map.HoldsValueAddress(constant)) && !used.Contains(map))
                    used.Add(map);
        }
        return used;
    }

    /// <summary>
    /// The key of the element whose value is at <paramref name="value"/>, for a bpf_timer callback: in the element
    /// (HASH), or its index written to <paramref name="scratch"/> (ARRAY), as the kernel's bpf_timer_cb finds it.
    /// </summary>
    internal virtual byte* TimerKey(byte* value, uint* scratch) => throw new NotSupportedException($"{Type} maps hold no bpf_timer");

    /// <summary>True when <paramref name="address"/> lies in the map's directly addressable values (ARRAY maps).</summary>
    internal virtual bool HoldsValueAddress(ulong address) => false;

    /// <summary>Drops a reference (bpf_map_put); the last one frees the map after the programs running now end.</summary>
    internal void Release()
    {
        if (Interlocked.Decrement(ref _refs) != 0) return;
        byte* header = _header;
        int index = _index;
        MapEpoch.Retire(() =>
        {
            FreeMemory();
            MapMemory.Uncharge(Interlocked.Exchange(ref _charge, 0));
            lock (s_registryLock)
            {
                s_registry[index] = null;
                s_freeIndexes.Push(index);
            }
            Native.Free(header);
        });
    }

    /// <summary>Records the bytes charged to <see cref="MapMemory"/> for this map (returned when its memory is freed).</summary>
    internal void SetMemoryCharge(long bytes) => _charge = bytes;

    /// <summary>
    /// Charges an element allocated on insert (<see cref="MapMemory.TryCharge"/>) to this map: false when the limit
    /// does not allow it (the insert fails with ENOMEM). What is still charged when the map is freed is returned then.
    /// </summary>
    internal bool ChargeElement(long bytes)
    {
        if (!MapMemory.TryCharge(bytes)) return false;
        Interlocked.Add(ref _charge, bytes);
        return true;
    }

    /// <summary>Returns the charge of an element that left the map (deleted, replaced, its socket closed).</summary>
    internal void UnchargeElement(long bytes)
    {
        Interlocked.Add(ref _charge, -bytes);
        MapMemory.Uncharge(bytes);
    }

    /// <summary>Frees the map's native memory (called once, when no reader can hold it).</summary>
    protected abstract void FreeMemory();

    // ---- checked mode ------------------------------------------------------------------------------

    /// <summary>The maps not yet freed, including disposed ones a map-in-map still holds (checked mode walks them).</summary>
    internal static IEnumerable<BpfMap> LiveMaps()
    {
        foreach (var map in Volatile.Read(ref s_registry))
            if (map is { IsLive: true }) yield return map;
    }

    /// <summary>How far past a value checked mode still attributes an access to it, in bytes.</summary>
    internal const int NearMiss = 64;

    /// <summary>True when <paramref name="address"/> lies in [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/> + <see cref="NearMiss"/>).</summary>
    internal static bool Near(ulong address, ulong start, int length) => address >= start && address - start < (ulong)(length + NearMiss);

    /// <summary>
    /// Keeps the better of two candidates for <see cref="FindValue"/>: one holding <paramref name="address"/>
    /// wins over a near miss. Returns true when the candidate holds it (the search can stop).
    /// </summary>
    internal static bool Better(ulong address, ulong start, int length, ref ulong bestStart, ref int bestLength)
    {
        if (!Near(address, start, length)) return false;
        bool holds = address - start < (ulong)length;
        if (holds || bestLength == 0) { bestStart = start; bestLength = length; }
        return holds;
    }

    /// <summary>
    /// Checked mode: the value a program may touch (a live element's value, a reserved ring-buffer
    /// record) that holds <paramref name="address"/> or ends less than <see cref="NearMiss"/> bytes
    /// before it (so an overrun is reported against its value); false when there is none. The caller
    /// checks the bounds. Slow (it may walk the map): checked mode only.
    /// </summary>
    internal virtual bool FindValue(ulong address, out ulong start, out int length)
    {
        start = 0;
        length = 0;
        return false;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Type} map '{Name}' (key {KeySize}, value {ValueSize}, max {MaxEntries})";
}
