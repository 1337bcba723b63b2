namespace BpfJit.Runtime.Maps;

/// <summary>Receives the records a program writes with bpf_perf_event_output to one index of a PERF_EVENT_ARRAY.</summary>
public delegate void PerfEventSink(int index, ReadOnlySpan<byte> data);

/// <summary>
/// BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 index (usually a CPU) → a perf event. Here the host attaches a
/// <see cref="PerfEventSink"/> per index with <see cref="SetSink"/> (there are no perf event fds, so the
/// byte API's update returns -EOPNOTSUPP); bpf_perf_event_output delivers synchronously to the sink.
/// </summary>
public sealed unsafe class PerfEventArrayMap : BpfMap
{
    /// <summary>BPF_F_INDEX_MASK: the index bits of perf_event_output's flags.</summary>
    public const ulong IndexMask = 0xffff_ffff;

    /// <summary>BPF_F_CURRENT_CPU: output to the index of the current CPU.</summary>
    public const ulong CurrentCpu = IndexMask;

    readonly PerfEventSink?[] _sinks;

    internal PerfEventArrayMap(MapDefinition definition) : base(definition) => _sinks = new PerfEventSink?[MaxEntries];

    /// <summary>Attaches (or with null, detaches) the sink of <paramref name="index"/>: 0 or -E2BIG.</summary>
    public int SetSink(uint index, PerfEventSink? sink)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        Volatile.Write(ref _sinks[index], sink);
        return 0;
    }

    /// <summary>Attaches <paramref name="sink"/> to every index.</summary>
    public void SetSinkForAll(PerfEventSink? sink)
    {
        for (uint i = 0; i < (uint)MaxEntries; i++) SetSink(i, sink);
    }

    /// <summary>bpf_perf_event_output: 0, -EINVAL (flags), -E2BIG (index), -ENOENT (no sink at the index).</summary>
    public long Output(ulong flags, byte* data, ulong size)
    {
        if ((flags & ~IndexMask) != 0) return -Errno.EINVAL;
        ulong index = flags & IndexMask;
        if (index == CurrentCpu) index = (ulong)Cpu.Current();
        if (index >= (ulong)MaxEntries) return -Errno.E2BIG;
        var sink = Volatile.Read(ref _sinks[index]);
        if (sink == null) return -Errno.ENOENT;
        sink((int)index, new ReadOnlySpan<byte>(data, checked((int)size)));
        return 0;
    }

    /// <summary>
    /// get_map_perf_counter for bpf_perf_event_read(_value): 0 (a host sink counts nothing), -EINVAL (flags past the
    /// index), -E2BIG (index), -ENOENT (an empty slot).
    /// </summary>
    public int ReadCounter(ulong flags)
    {
        if ((flags & ~IndexMask) != 0) return -Errno.EINVAL;
        ulong index = flags & IndexMask;
        if (index == CurrentCpu) index = (ulong)Cpu.Current();
        if (index >= (ulong)MaxEntries) return -Errno.E2BIG;
        return Volatile.Read(ref _sinks[index]) == null ? -Errno.ENOENT : 0;
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        // bpf_fd_array_map_update_elem: BPF_ANY only, the index, then the value as a perf event fd. This runtime
        // has no perf event descriptors (sinks attach with SetSink), so every fd is a bad one, as in the kernel.
        if (flags != UpdateFlags.Any) return -Errno.EINVAL;
        if (*(uint*)key >= (uint)MaxEntries) return -Errno.E2BIG;
        return -Errno.EBADF;
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key)
    {
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        if (Volatile.Read(ref _sinks[index]) == null) return -Errno.ENOENT;
        return SetSink(index, null);
    }

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    /// <inheritdoc />
    protected override void FreeMemory() => Array.Clear(_sinks);
}
