using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_dynptr_from_mem.</summary>
    public const int DynptrFromMemId = 197;
    /// <summary>bpf_ringbuf_reserve_dynptr.</summary>
    public const int RingbufReserveDynptrId = 198;
    /// <summary>bpf_ringbuf_submit_dynptr.</summary>
    public const int RingbufSubmitDynptrId = 199;
    /// <summary>bpf_ringbuf_discard_dynptr.</summary>
    public const int RingbufDiscardDynptrId = 200;
    /// <summary>bpf_dynptr_read.</summary>
    public const int DynptrReadId = 201;
    /// <summary>bpf_dynptr_write.</summary>
    public const int DynptrWriteId = 202;
    /// <summary>bpf_dynptr_data.</summary>
    public const int DynptrDataId = 203;
    /// <summary>bpf_user_ringbuf_drain.</summary>
    public const int UserRingbufDrainId = 209;

    /// <summary>
    /// bpf_user_ringbuf_drain(map, callback, ctx, flags): calls <c>callback(&amp;dynptr, ctx)</c> for each sample userspace
    /// submitted to the USER_RINGBUF <c>map</c>, until it returns 1 (<see cref="UserRingBufMap"/>). The number of samples
    /// drained; -EINVAL for flags other than BPF_RB_NO_WAKEUP/BPF_RB_FORCE_WAKEUP or a malformed ring, -EBUSY while
    /// another drain runs, -E2BIG for a sample larger than the ring or a dynptr.
    /// </summary>
    public static ulong UserRingbufDrain(ulong map, ulong callback, ulong ctx, ulong flags, ulong r5)
    {
        if ((flags & ~(RingBufMap.NoWakeup | RingBufMap.ForceWakeup)) != 0) return Err(Errno.EINVAL);
        if (BpfMap.FromHandle(map) is not UserRingBufMap ring) return Err(Errno.EINVAL);
        return (ulong)ring.Drain(Callbacks.FromHandle(callback), ctx);
    }

    /// <summary>
    /// bpf_dynptr_read(dst, len, src, offset, flags): copies <c>len</c> bytes at <c>offset</c> of the dynptr's data.
    /// 0; -EINVAL for flags or a NULL dynptr, -E2BIG when the range leaves the data.
    /// </summary>
    public static ulong DynptrRead(ulong dst, ulong len, ulong src, ulong offset, ulong flags)
    {
        var d = (ulong*)src;
        if (flags != 0 || Dynptr.IsNull(d)) return Err(Errno.EINVAL);
        if (!Dynptr.InRange(d, (uint)offset, (uint)len)) return Err(Errno.E2BIG);
        Buffer.MemoryCopy(Dynptr.Data(d) + (uint)offset, (void*)dst, (uint)len, (uint)len);
        return 0;
    }

    /// <summary>
    /// bpf_dynptr_write(dst, offset, src, len, flags): copies <c>len</c> bytes from <c>src</c> to <c>offset</c> of the
    /// dynptr's data. 0; -EINVAL for a NULL or read-only dynptr, then -E2BIG when the range leaves the data, then -EINVAL
    /// for flags (the kernel's order).
    /// </summary>
    public static ulong DynptrWrite(ulong dst, ulong offset, ulong src, ulong len, ulong flags)
    {
        var d = (ulong*)dst;
        if (Dynptr.IsNull(d) || Dynptr.ReadOnly(d)) return Err(Errno.EINVAL);
        if (!Dynptr.InRange(d, (uint)offset, (uint)len)) return Err(Errno.E2BIG);
        if (flags != 0) return Err(Errno.EINVAL);
        // memmove: the source may overlap the data (Buffer.MemoryCopy copies overlapping ranges correctly).
        Buffer.MemoryCopy((void*)src, Dynptr.Data(d) + (uint)offset, (uint)len, (uint)len);
        return 0;
    }

    /// <summary>
    /// bpf_dynptr_from_mem(data, size, flags, ptr): makes <c>ptr</c> a LOCAL dynptr over <c>size</c> bytes at <c>data</c>.
    /// 0; -E2BIG for a size above <see cref="Dynptr.MaxSize"/>, -EINVAL for flags; on failure <c>ptr</c> is a NULL dynptr.
    /// </summary>
    public static ulong DynptrFromMem(ulong data, ulong size, ulong flags, ulong ptr, ulong r5)
    {
        var d = (ulong*)ptr;
        uint n = (uint)size;
        int err = n > Dynptr.MaxSize ? Errno.E2BIG : flags != 0 ? Errno.EINVAL : 0;
        if (err != 0)
        {
            Dynptr.SetNull(d);
            return Err(err);
        }
        Dynptr.Init(d, (byte*)data, n, Dynptr.TypeLocal);
        return 0;
    }

    /// <summary>
    /// bpf_ringbuf_reserve_dynptr(ringbuf, size, flags, ptr): reserves a record and makes <c>ptr</c> a RINGBUF dynptr
    /// over it. 0; -EINVAL for flags, -E2BIG for a size above <see cref="Dynptr.MaxSize"/>, -EINVAL when the ring has no
    /// room; on failure <c>ptr</c> is a NULL dynptr, which the program must still submit or discard.
    /// </summary>
    public static ulong RingbufReserveDynptr(ulong map, ulong size, ulong flags, ulong ptr, ulong r5)
    {
        var d = (ulong*)ptr;
        uint n = (uint)size;
        int err = flags != 0 ? Errno.EINVAL : n > Dynptr.MaxSize ? Errno.E2BIG : 0;
        ulong sample = err == 0 && BpfMap.FromHandle(map) is RingBufMap ring ? ring.Reserve(n, 0) : 0;
        if (err == 0 && sample == 0) err = Errno.EINVAL;
        if (err != 0)
        {
            Dynptr.SetNull(d);
            return Err(err);
        }
        Dynptr.Init(d, (byte*)sample, n, Dynptr.TypeRingbuf);
        return 0;
    }

    /// <summary>bpf_ringbuf_submit_dynptr(ptr, flags): commits the dynptr's record and makes it NULL; nothing for a NULL dynptr.</summary>
    public static ulong RingbufSubmitDynptr(ulong ptr, ulong flags, ulong r3, ulong r4, ulong r5) => CommitDynptr(ptr, discard: false, flags);

    /// <summary>bpf_ringbuf_discard_dynptr(ptr, flags): drops the dynptr's record and makes it NULL; nothing for a NULL dynptr.</summary>
    public static ulong RingbufDiscardDynptr(ulong ptr, ulong flags, ulong r3, ulong r4, ulong r5) => CommitDynptr(ptr, discard: true, flags);

    static ulong CommitDynptr(ulong ptr, bool discard, ulong flags)
    {
        var d = (ulong*)ptr;
        if (Dynptr.IsNull(d)) return 0;
        RingBufMap.Commit(d[0], discard, flags);
        Dynptr.SetNull(d);
        return 0;
    }

    /// <summary>
    /// bpf_dynptr_data(ptr, offset, len): the address of <c>len</c> bytes at <c>offset</c> of the dynptr's data, or 0
    /// when the range leaves it, the dynptr is NULL or read-only.
    /// </summary>
    public static ulong DynptrData(ulong ptr, ulong offset, ulong len, ulong r4, ulong r5)
    {
        var d = (ulong*)ptr;
        if (Dynptr.IsNull(d) || !Dynptr.InRange(d, (uint)offset, (uint)len) || Dynptr.ReadOnly(d)) return 0;
        return (ulong)(Dynptr.Data(d) + (uint)offset);
    }
}

/// <summary>
/// The kernel's <c>struct bpf_dynptr_kern</c> (16 bytes): the data pointer, then a u32 holding the size in bits 0-23,
/// the type in bits 28-30 and read-only in bit 31, then a u32 offset into the data.
/// </summary>
internal static unsafe class Dynptr
{
    const uint SizeMask = (1u << 24) - 1;
    const uint RdonlyBit = 1u << 31;
    const int TypeShift = 28;
    /// <summary>BPF_DYNPTR_TYPE_LOCAL.</summary>
    public const uint TypeLocal = 1;
    /// <summary>BPF_DYNPTR_TYPE_RINGBUF.</summary>
    public const uint TypeRingbuf = 2;
    /// <summary>DYNPTR_MAX_SIZE: the largest data a dynptr describes (its 24-bit size field).</summary>
    public const uint MaxSize = SizeMask;
    /// <summary>sizeof(struct bpf_dynptr).</summary>
    public const int Bytes = 16;

    /// <summary>bpf_dynptr_init of a LOCAL dynptr over <paramref name="size"/> bytes at <paramref name="data"/>.</summary>
    public static void InitLocal(ulong* d, byte* data, int size) => Init(d, data, (uint)size, TypeLocal);

    /// <summary>bpf_dynptr_init: a dynptr of <paramref name="type"/> over <paramref name="size"/> bytes at <paramref name="data"/>, offset 0.</summary>
    public static void Init(ulong* d, byte* data, uint size, uint type)
    {
        d[0] = (ulong)data;
        d[1] = size | type << TypeShift;
    }

    /// <summary>bpf_dynptr_set_null: no data, size 0, no type.</summary>
    public static void SetNull(ulong* d)
    {
        d[0] = 0;
        d[1] = 0;
    }

    /// <summary>True for a NULL dynptr (one a failed constructor or a release left).</summary>
    public static bool IsNull(ulong* d) => d[0] == 0;

    public static byte* Data(ulong* d) => (byte*)d[0] + (uint)(d[1] >> 32);

    public static uint Size(ulong* d) => (uint)d[1] & SizeMask;

    public static bool ReadOnly(ulong* d) => ((uint)d[1] & RdonlyBit) != 0;

    /// <summary>The dynptr's type (<see cref="TypeLocal"/>, <see cref="TypeRingbuf"/>; 0 for a NULL one).</summary>
    public static uint Type(ulong* d) => ((uint)d[1] >> TypeShift) & 7;

    /// <summary>bpf_dynptr_check_off_len.</summary>
    public static bool InRange(ulong* d, ulong offset, ulong len) => offset <= Size(d) && len <= Size(d) - offset;
}
