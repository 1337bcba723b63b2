namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_PROG_ARRAY: u32 index → program, for bpf_tail_call. Userspace stores programs with
/// <see cref="SetProgram"/>; the byte API takes a u32 program id that <see cref="Resolver"/> maps to a
/// program (the kernel takes a program fd), and lookup returns that id.
/// <para>
/// A stored <see cref="SkLookup.SkLookupProgram"/> is referenced, as the kernel's prog_array holds a reference on
/// each program in it: the program and its maps stay alive while a slot holds it, even after its loader disposed
/// it, so a tail call never runs a program whose maps were freed. Replacing or deleting the slot drops the
/// reference; so does disposing the map (its owner's reference, the kernel's last user fd:
/// <c>prog_array_map_clear</c>), which empties every slot and breaks the cycle of a program stored in a
/// PROG_ARRAY that it uses itself.
/// </para>
/// </summary>
public sealed unsafe class ProgArrayMap : BpfMap
{
    readonly ITailCallTarget?[] _programs;
    readonly uint[] _ids;

    internal ProgArrayMap(MapDefinition definition) : base(definition)
    {
        _programs = new ITailCallTarget?[MaxEntries];
        _ids = new uint[MaxEntries];
    }

    /// <summary>Resolves the program ids of the byte API (<see cref="BpfMap.Update(ReadOnlySpan{byte}, ReadOnlySpan{byte}, ulong)"/>); null rejects them with -EBADF.</summary>
    public Func<uint, ITailCallTarget?>? Resolver { get; set; }

    /// <summary>
    /// Stores (or with null, clears) the program at <paramref name="index"/>: 0, -E2BIG, or -EBADF for a program
    /// that is already freed (nothing holds it any more).
    /// </summary>
    public int SetProgram(uint index, ITailCallTarget? program, uint id = 0)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        if (program is SkLookup.SkLookupProgram p && !p.TryAddRef()) return -Errno.EBADF;
        lock (_programs)
        {
            _ids[index] = id;
            Drop(Interlocked.Exchange(ref _programs[index], program));
        }
        return 0;
    }

    static void Drop(ITailCallTarget? old)
    {
        if (old is SkLookup.SkLookupProgram p) p.Release();
    }

    /// <summary>Empties every slot, dropping the programs' references.</summary>
    void Clear()
    {
        lock (_programs)
            for (int i = 0; i < _programs.Length; i++)
                Drop(Interlocked.Exchange(ref _programs[i], null));
    }

    /// <inheritdoc />
    private protected override void OnOwnerDisposed() => Clear();

    /// <summary>The program at <paramref name="index"/> (null when empty or out of range). The tail_call hot path.</summary>
    public ITailCallTarget? Program(uint index) => index < (uint)_programs.Length ? Volatile.Read(ref _programs[index]) : null;

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags)
    {
        uint index = *(uint*)key;
        if (flags != 0) return -Errno.EINVAL;
        if (Program(index) == null) return -Errno.ENOENT;
        *(uint*)value = _ids[index];
        return 0;
    }

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        if (flags != UpdateFlags.Any) return -Errno.EINVAL;
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        uint id = *(uint*)value;
        var program = Resolver?.Invoke(id);
        if (program == null) return -Errno.EBADF;
        return SetProgram(index, program, id);
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key)
    {
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        if (Volatile.Read(ref _programs[index]) == null) return -Errno.ENOENT;
        return SetProgram(index, null);
    }

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    /// <inheritdoc />
    protected override void FreeMemory() => Clear();
}
