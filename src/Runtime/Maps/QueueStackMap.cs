using BpfJit.Frontend;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_QUEUE (FIFO) and BPF_MAP_TYPE_STACK (LIFO), the kernel's kernel/bpf/queue_stack_maps.c: a ring of
/// max_entries + 1 slots of value_size bytes (one slot stays free so that full and empty differ), a head where the next
/// value goes and a tail where the oldest is, under one lock. There are no keys (key_size 0) and no value a program can
/// point into: every operation copies a whole value in or out. Programs use bpf_map_push_elem, bpf_map_pop_elem and
/// bpf_map_peek_elem; userspace update pushes, lookup peeks and <see cref="BpfMap.LookupAndDelete"/> pops, while
/// delete and get_next_key fail with -EINVAL, as in the kernel.
/// </summary>
public sealed unsafe class QueueStackMap : BpfMap
{
    readonly byte* _elements;
    readonly uint _size;
    readonly bool _stack;
    readonly Lock _lock = new();
    uint _head, _tail;

    internal QueueStackMap(MapDefinition definition) : base(definition)
    {
        _stack = definition.Type == MapType.Stack;
        _size = (uint)definition.MaxEntries + 1;
        _elements = Native.AllocLazy(Bytes);
        if (_elements == null) throw new MapCreateException(Name, Type, Errno.ENOMEM, $"cannot reserve {Bytes} bytes for the elements");
    }

    /// <summary>The kernel's queue_stack_map_mem_usage less its header: max_entries + 1 values, unpadded.</summary>
    nuint Bytes => (nuint)_size * (nuint)(uint)ValueSize;

    /// <summary>The number of values held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock) return (int)((_head + _size - _tail) % _size);
        }
    }

    bool IsEmpty => _head == _tail;

    bool IsFull => (_head + 1 == _size ? 0 : _head + 1) == _tail;

    /// <summary>
    /// queue_stack_map_push_elem (bpf_map_push_elem and userspace update): 0; -EINVAL for flags other than BPF_ANY and
    /// BPF_EXIST; -E2BIG when full, unless BPF_EXIST asks to drop the oldest value to make room.
    /// </summary>
    public long Push(byte* value, ulong flags)
    {
        if ((flags & UpdateFlags.NoExist) != 0 || flags > UpdateFlags.Exist) return -Errno.EINVAL;
        lock (_lock)
        {
            if (IsFull)
            {
                if ((flags & UpdateFlags.Exist) == 0) return -Errno.E2BIG;
                // The oldest value is at the tail for both kinds: a full STACK loses its bottom.
                if (++_tail >= _size) _tail = 0;
            }
            Native.Copy(value, Slot(_head), ValueSize);
            if (++_head >= _size) _head = 0;
            return 0;
        }
    }

    /// <summary>
    /// bpf_map_pop_elem (<paramref name="delete"/>) and bpf_map_peek_elem: copies the front value (the oldest for a QUEUE,
    /// the newest for a STACK) to <paramref name="value"/>. -ENOENT when empty, with <paramref name="value"/> zeroed
    /// for a program; userspace's buffer is left as it was (the kernel zeroes its own copy and does not copy it out).
    /// </summary>
    public long Get(byte* value, bool delete, bool zeroWhenEmpty = true)
    {
        lock (_lock)
        {
            if (IsEmpty)
            {
                if (zeroWhenEmpty) new Span<byte>(value, ValueSize).Clear();
                return -Errno.ENOENT;
            }
            if (_stack)
            {
                uint index = _head == 0 ? _size - 1 : _head - 1;
                Native.Copy(Slot(index), value, ValueSize);
                if (delete) _head = index;
            }
            else
            {
                Native.Copy(Slot(_tail), value, ValueSize);
                if (delete && ++_tail >= _size) _tail = 0;
            }
            return 0;
        }
    }

    byte* Slot(uint index) => _elements + (nuint)index * (nuint)(uint)ValueSize;

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags) => (int)Get(value, delete: false, zeroWhenEmpty: false);

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags) => (int)Push(value, flags);

    /// <inheritdoc />
    protected override int LookupAndDeleteCore(byte* key, byte* value, ulong flags) => (int)Get(value, delete: true, zeroWhenEmpty: false);

    /// <inheritdoc />
    protected override int DeleteCore(byte* key) => -Errno.EINVAL;

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => -Errno.EINVAL;

    /// <inheritdoc />
    public override long UpdateElem(ulong keyPtr, ulong valuePtr, ulong flags) => -Errno.EINVAL;

    /// <inheritdoc />
    public override long DeleteElem(ulong keyPtr) => -Errno.EINVAL;

    /// <inheritdoc />
    protected override void FreeMemory() => Native.FreeLazy(_elements, Bytes);
}
