namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_USER_RINGBUF: a ring of <c>max_entries</c> bytes (a power of 2 and a multiple of the page size) that
/// userspace produces into and programs drain with <c>bpf_user_ringbuf_drain</c>, in the kernel's record format
/// (kernel/bpf/ringbuf.c): each sample starts with an 8-byte header whose u32 length carries bit 31 BUSY while the
/// producer writes it and bit 30 DISCARD when it gave it up; samples are padded to 8 bytes.
/// <para>
/// The producer side is libbpf's <c>user_ring_buffer</c>: <see cref="Reserve"/> a sample, write it, then
/// <see cref="Submit"/> or <see cref="Discard"/> it; samples are drained in reservation order and a BUSY one stops the
/// drain. One producer at a time, as libbpf requires (calls here are serialised). The kernel maps the data area twice
/// so a sample may run past the end; here the data area is followed by as many spare bytes, so every sample is
/// contiguous at its header's offset, as the kernel's mapping shows it.
/// </para>
/// </summary>
public sealed unsafe class UserRingBufMap : BpfMap
{
    /// <summary>BPF_MAX_USER_RINGBUF_SAMPLES: the most samples one drain takes.</summary>
    public const int MaxSamplesPerDrain = 128 * 1024;

    /// <summary>The largest sample a dynptr can describe (DYNPTR_MAX_SIZE, 2^24 - 1).</summary>
    public const int MaxDynptrSize = (1 << 24) - 1;

    readonly byte* _data;
    readonly long _size;
    readonly long _mask;
    readonly Lock _produceLock = new();
    long _producer;
    long _consumer;
    int _busy;
    // The sample the running drain handed its callback (checked mode attributes accesses to it).
    ulong _current;
    int _currentLength;

    internal UserRingBufMap(MapDefinition definition) : base(definition)
    {
        _size = MaxEntries;
        _mask = _size - 1;
        _data = Native.AllocLazy((nuint)(2 * _size), 4096);
        if (_data == null) throw new MapCreateException(Name, Type, Errno.ENOMEM, $"cannot reserve {2 * _size} bytes for the ring");
    }

    /// <summary>The data area's size in bytes.</summary>
    public long Size => _size;

    /// <summary>The producer position (bytes ever reserved).</summary>
    public long ProducerPosition => Volatile.Read(ref _producer);

    /// <summary>The consumer position (bytes ever drained or skipped).</summary>
    public long ConsumerPosition => Volatile.Read(ref _consumer);

    /// <summary>
    /// user_ring_buffer__reserve: room for a sample of <paramref name="size"/> bytes, marked BUSY until it is submitted
    /// or discarded. 0, -E2BIG when the sample and its header exceed the ring, -ENOSPC when the ring has no room now.
    /// </summary>
    public int Reserve(int size, out UserRingBufSample sample)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        sample = default;
        long total = Native.Round8(size + RingBufMap.RecordHeaderSize);
        if (total > _size) return -Errno.E2BIG;
        lock (_produceLock)
        {
            long producer = _producer;
            if (total > _size - (producer - Volatile.Read(ref _consumer))) return -Errno.ENOSPC;
            byte* header = _data + (producer & _mask);
            *(uint*)header = (uint)size | RingBufMap.BusyBit;
            *(uint*)(header + 4) = 0;
            // Publishes the BUSY header with the position: a drain sees the sample, and waits for it.
            Volatile.Write(ref _producer, producer + total);
            sample = new UserRingBufSample(this, header + RingBufMap.RecordHeaderSize, size);
            return 0;
        }
    }

    /// <summary>user_ring_buffer__submit: the sample is ready for programs (its BUSY bit cleared).</summary>
    public void Submit(in UserRingBufSample sample) => Commit(sample, 0);

    /// <summary>user_ring_buffer__discard: the sample is skipped by programs.</summary>
    public void Discard(in UserRingBufSample sample) => Commit(sample, RingBufMap.DiscardBit);

    void Commit(in UserRingBufSample sample, uint discard)
    {
        if (sample.Map != this) throw new ArgumentException("the sample was not reserved in this ring", nameof(sample));
        byte* header = sample.Address - RingBufMap.RecordHeaderSize;
        Volatile.Write(ref *(uint*)header, (uint)sample.Length | discard);
    }

    /// <summary>Reserves, copies <paramref name="data"/> and submits: 0, -E2BIG or -ENOSPC as <see cref="Reserve"/>.</summary>
    public int Write(ReadOnlySpan<byte> data)
    {
        int err = Reserve(data.Length, out var sample);
        if (err != 0) return err;
        data.CopyTo(sample.Span);
        Submit(sample);
        return 0;
    }

    /// <summary>
    /// bpf_user_ringbuf_drain's work: calls <paramref name="callback"/>(dynptr, ctx) per ready sample until it returns
    /// non-zero, a BUSY sample or the producer position is reached, or <see cref="MaxSamplesPerDrain"/> samples were
    /// taken; discarded samples are skipped and not counted. The number of samples, or -EBUSY while another drain
    /// runs, -EINVAL for a sample that overruns the producer position, -E2BIG for one larger than the ring or a dynptr.
    /// </summary>
    internal long Drain(BpfCallback callback, ulong ctx)
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) return -Errno.EBUSY;
        try
        {
            long samples = 0, discarded = 0;
            long ret = 0;
            var dynptr = stackalloc ulong[2];
            for (; samples < MaxSamplesPerDrain && ret == 0; samples++)
            {
                long err = Peek(out byte* data, out int size);
                if (err == -Errno.ENODATA) break;
                if (err == -Errno.EAGAIN)
                {
                    discarded++;
                    continue;
                }
                if (err != 0) return err;
                Dynptr.InitLocal(dynptr, data, size);
                _current = (ulong)data;
                _currentLength = size;
                // The dynptr is on this method's stack: lend it to the callback, whose dynptr helpers take it.
                Checked.MemoryRegions.Lend((ulong)dynptr, Dynptr.Bytes);
                try
                {
                    ret = (long)callback((ulong)dynptr, ctx, 0, 0, 0);
                }
                finally
                {
                    Checked.MemoryRegions.EndLend();
                    _current = 0;
                    Volatile.Write(ref _consumer, _consumer + Native.Round8(size + RingBufMap.RecordHeaderSize));
                }
            }
            return samples - discarded;
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    // __bpf_user_ringbuf_peek: the next sample, -ENODATA (none, or still BUSY), -EAGAIN (a discarded one, skipped).
    long Peek(out byte* data, out int size)
    {
        data = null;
        size = 0;
        long producer = Volatile.Read(ref _producer);
        if (producer % 8 != 0) return -Errno.EINVAL;
        long consumer = _consumer;
        if (consumer >= producer) return -Errno.ENODATA;
        byte* header = _data + (consumer & _mask);
        uint word = Volatile.Read(ref *(uint*)header);
        uint flags = word & (RingBufMap.BusyBit | RingBufMap.DiscardBit);
        long length = word & ~flags;
        long total = Native.Round8((int)length + RingBufMap.RecordHeaderSize);
        if (total > producer - consumer) return -Errno.EINVAL;
        if (total > _size) return -Errno.E2BIG;
        if (length > MaxDynptrSize) return -Errno.E2BIG;
        if ((flags & RingBufMap.DiscardBit) != 0)
        {
            Volatile.Write(ref _consumer, consumer + total);
            return -Errno.EAGAIN;
        }
        if ((flags & RingBufMap.BusyBit) != 0) return -Errno.ENODATA;
        data = header + RingBufMap.RecordHeaderSize;
        size = (int)length;
        return 0;
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    internal override bool FindValue(ulong address, out ulong start, out int length)
    {
        start = _current;
        length = _currentLength;
        return start != 0 && Near(address, start, length);
    }

    /// <inheritdoc />
    protected override void FreeMemory() => Native.FreeLazy(_data, (nuint)(2 * _size));
}

/// <summary>A sample reserved in a <see cref="UserRingBufMap"/>: write its bytes, then submit or discard it once.</summary>
public readonly unsafe struct UserRingBufSample
{
    internal UserRingBufSample(UserRingBufMap map, byte* address, int length)
    {
        Map = map;
        Address = address;
        Length = length;
    }

    internal UserRingBufMap? Map { get; }

    internal byte* Address { get; }

    /// <summary>The sample's size in bytes.</summary>
    public int Length { get; }

    /// <summary>The sample's bytes, to fill before <see cref="UserRingBufMap.Submit"/>.</summary>
    public Span<byte> Span => new(Address, Length);
}
