using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>Receives one committed ring buffer record (valid only during the call).</summary>
public delegate void RingBufRecordHandler(ReadOnlySpan<byte> record);

/// <summary>
/// BPF_MAP_TYPE_RINGBUF: a multi-producer, single-consumer ring of <c>max_entries</c> bytes (a power of
/// two and a multiple of 4096) with the kernel's record format. Each record starts with an 8-byte header:
/// u32 length with bit 31 BUSY (reserved, not yet committed) and bit 30 DISCARD, then a u32 offset of the
/// header from the start of the data area in 8-byte units; the payload follows, and records are padded to
/// 8 bytes. Producers reserve under a lock and commit by clearing BUSY; the consumer reads records in
/// order and stops at the first BUSY one.
/// <para>
/// The kernel maps the data area twice so a record can wrap around the end; here a record that would
/// wrap is preceded by a DISCARD padding record up to the end of the area, which consumers skip, so
/// every record is contiguous.
/// </para>
/// </summary>
public sealed unsafe class RingBufMap : BpfMap
{
    /// <summary>BUSY bit of the record length.</summary>
    public const uint BusyBit = 1u << 31;
    /// <summary>DISCARD bit of the record length.</summary>
    public const uint DiscardBit = 1u << 30;
    /// <summary>Size of a record header.</summary>
    public const int RecordHeaderSize = 8;
    /// <summary>BPF_RB_NO_WAKEUP.</summary>
    public const ulong NoWakeup = 1;
    /// <summary>BPF_RB_FORCE_WAKEUP.</summary>
    public const ulong ForceWakeup = 2;
    /// <summary>bpf_ringbuf_query: BPF_RB_AVAIL_DATA.</summary>
    public const ulong QueryAvailData = 0;
    /// <summary>bpf_ringbuf_query: BPF_RB_RING_SIZE.</summary>
    public const ulong QueryRingSize = 1;
    /// <summary>bpf_ringbuf_query: BPF_RB_CONS_POS.</summary>
    public const ulong QueryConsPos = 2;
    /// <summary>bpf_ringbuf_query: BPF_RB_PROD_POS.</summary>
    public const ulong QueryProdPos = 3;

    const int PrefixSize = 64;      // before the data area: the map handle, so a record finds its ring

    readonly byte* _block;
    readonly byte* _data;
    readonly long _size;
    readonly long _mask;
    readonly Lock _produceLock = new();
    readonly Lock _consumeLock = new();
    readonly ManualResetEventSlim _ready = new(false);
    long _producer;
    long _consumer;
    int _waiters;

    internal RingBufMap(MapDefinition definition) : base(definition)
    {
        _size = MaxEntries;
        _mask = _size - 1;
        _block = Native.AllocLazy((nuint)(PrefixSize + _size), 4096);
        if (_block == null) throw new MapCreateException(Name, Type, Errno.ENOMEM, $"cannot reserve {PrefixSize + _size} bytes for the ring");
        _data = _block + PrefixSize;
        *(ulong*)_block = Handle;
    }

    /// <summary>The data area's size in bytes.</summary>
    public long Size => _size;

    /// <summary>The producer position (bytes ever reserved, padding included).</summary>
    public long ProducerPosition => Volatile.Read(ref _producer);

    /// <summary>The consumer position (bytes ever consumed).</summary>
    public long ConsumerPosition => Volatile.Read(ref _consumer);

    /// <summary>Bytes reserved and not yet consumed (BPF_RB_AVAIL_DATA).</summary>
    public long AvailableData => Volatile.Read(ref _producer) - Volatile.Read(ref _consumer);

    // ---- producers ----------------------------------------------------------------------------------

    /// <summary>bpf_ringbuf_reserve: the address of <paramref name="size"/> writable bytes, or 0 when full or invalid.</summary>
    public ulong Reserve(ulong size, ulong flags)
    {
        if (flags != 0 || size > (ulong)(_size - RecordHeaderSize)) return 0;
        long total = Native.Round8((int)size + RecordHeaderSize);
        lock (_produceLock)
        {
            long consumer = Volatile.Read(ref _consumer);
            long producer = _producer;
            long offset = producer & _mask;
            long pad = offset + total > _size ? _size - offset : 0;
            if (producer + pad + total - consumer > _size) return 0;
            if (pad != 0)
            {
                WriteHeader(_data + offset, (uint)(pad - RecordHeaderSize) | DiscardBit, offset);
                producer += pad;
                offset = 0;
            }
            byte* header = _data + offset;
            WriteHeader(header, (uint)size | BusyBit, offset);
            Volatile.Write(ref _producer, producer + total);
            return (ulong)(header + RecordHeaderSize);
        }
    }

    static void WriteHeader(byte* header, uint length, long offset)
    {
        *(uint*)header = length;
        *(uint*)(header + 4) = (uint)(offset >> 3);
    }

    /// <summary>bpf_ringbuf_submit / bpf_ringbuf_discard: commits the record reserved at <paramref name="sample"/>.</summary>
    public static void Commit(ulong sample, bool discard, ulong flags)
    {
        byte* header = (byte*)sample - RecordHeaderSize;
        uint length = *(uint*)header & ~BusyBit;
        if (discard) length |= DiscardBit;
        Interlocked.Exchange(ref *(int*)header, (int)length);      // a full fence before the waiter check
        RingOf(header).Wake(flags);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static RingBufMap RingOf(byte* header)
    {
        byte* data = header - ((long)*(uint*)(header + 4) << 3);
        return (RingBufMap)FromHandle(*(ulong*)(data - PrefixSize));
    }

    void Wake(ulong flags)
    {
        if ((flags & NoWakeup) != 0 && (flags & ForceWakeup) == 0) return;
        if (Volatile.Read(ref _waiters) != 0) _ready.Set();
    }

    /// <summary>bpf_ringbuf_output: copies <paramref name="size"/> bytes as one record: 0, -EINVAL (flags), -EAGAIN (full).</summary>
    public long Output(byte* data, ulong size, ulong flags)
    {
        if ((flags & ~(NoWakeup | ForceWakeup)) != 0) return -Errno.EINVAL;
        ulong sample = Reserve(size, 0);
        if (sample == 0) return -Errno.EAGAIN;
        Native.Copy(data, (byte*)sample, (int)size);
        Commit(sample, discard: false, flags);
        return 0;
    }

    /// <summary>bpf_ringbuf_query.</summary>
    public ulong Query(ulong flags) => flags switch
    {
        QueryAvailData => (ulong)AvailableData,
        QueryRingSize => (ulong)_size,
        QueryConsPos => (ulong)Volatile.Read(ref _consumer),
        QueryProdPos => (ulong)Volatile.Read(ref _producer),
        _ => 0,
    };

    // ---- consumer -----------------------------------------------------------------------------------

    /// <summary>
    /// Delivers committed records in order to <paramref name="handler"/> (at most <paramref name="limit"/>),
    /// skipping discarded ones and stopping at the first record still being written; returns how many
    /// were delivered. The space of a record is released after its handler returns.
    /// </summary>
    public int Consume(RingBufRecordHandler handler, int limit = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        int delivered = 0;
        lock (_consumeLock)
        {
            long consumer = _consumer;
            while (delivered < limit && consumer < Volatile.Read(ref _producer))
            {
                byte* header = _data + (consumer & _mask);
                uint length = Volatile.Read(ref *(uint*)header);
                if ((length & BusyBit) != 0) break;
                uint size = length & ~(BusyBit | DiscardBit);
                if ((length & DiscardBit) == 0)
                {
                    handler(new ReadOnlySpan<byte>(header + RecordHeaderSize, (int)size));
                    delivered++;
                }
                consumer += Native.Round8((int)size + RecordHeaderSize);
                Volatile.Write(ref _consumer, consumer);
            }
        }
        return delivered;
    }

    /// <summary>Delivers every committed record (the consumer's poll loop body).</summary>
    public int Drain(RingBufRecordHandler handler) => Consume(handler);

    /// <summary>Reads the next committed record, if there is one.</summary>
    public bool TryRead(out byte[] record)
    {
        byte[]? copy = null;
        Consume(r => copy = r.ToArray(), 1);
        record = copy ?? [];
        return copy != null;
    }

    /// <summary>Waits until data is available (or the timeout passes); true when there is some.</summary>
    public bool WaitForData(TimeSpan timeout)
    {
        if (AvailableData > 0) return true;
        Interlocked.Increment(ref _waiters);
        try
        {
            _ready.Reset();
            if (AvailableData > 0) return true;
            _ready.Wait(timeout);
            return AvailableData > 0;
        }
        finally
        {
            Interlocked.Decrement(ref _waiters);
        }
    }

    // ---- the byte API: ring buffers have no elements ------------------------------------------------

    // The kernel's ring buffer has no elements for userspace: -ENOTSUPP for lookup, update, delete and
    // get_next_key with no key (key_size is 0; a non-NULL key pointer is -EINVAL there, which this API cannot pass).
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
        start = 0;
        length = 0;
        long producer = Volatile.Read(ref _producer);
        for (long position = Volatile.Read(ref _consumer); position < producer;)
        {
            byte* header = _data + (position & _mask);
            uint word = Volatile.Read(ref *(uint*)header);
            int size = (int)(word & ~(BusyBit | DiscardBit));
            ulong sample = (ulong)(header + RecordHeaderSize);
            if ((word & BusyBit) != 0 && size > 0 && Better(address, sample, size, ref start, ref length)) return true;
            position += Native.Round8(size + RecordHeaderSize);
        }
        return length != 0;
    }

    /// <summary>
    /// Checked mode: true when <paramref name="sample"/> is the start of a record of a live ring buffer that is reserved and not
    /// yet submitted or discarded (what bpf_ringbuf_submit and bpf_ringbuf_discard may be given; a zero-size record counts).
    /// </summary>
    internal static bool IsReserved(ulong sample)
    {
        foreach (var map in LiveMaps())
            if (map is RingBufMap ring && ring.HoldsReserved(sample)) return true;
        return false;
    }

    bool HoldsReserved(ulong sample)
    {
        // The data area first: a sample elsewhere needs no walk.
        if (sample - (ulong)_data - RecordHeaderSize >= (ulong)_size) return false;
        long producer = Volatile.Read(ref _producer);
        for (long position = Volatile.Read(ref _consumer); position < producer;)
        {
            byte* header = _data + (position & _mask);
            uint word = Volatile.Read(ref *(uint*)header);
            if ((ulong)(header + RecordHeaderSize) == sample) return (word & BusyBit) != 0 && (word & DiscardBit) == 0;
            position += Native.Round8((int)(word & ~(BusyBit | DiscardBit)) + RecordHeaderSize);
        }
        return false;
    }

    /// <inheritdoc />
    protected override void FreeMemory()
    {
        Native.FreeLazy(_block, (nuint)(PrefixSize + _size));
        _ready.Dispose();
    }
}
