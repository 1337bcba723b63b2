using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_dynptr_read.</summary>
    public const int DynptrReadId = 201;
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
        if (flags != 0 || Dynptr.Data(d) == null) return Err(Errno.EINVAL);
        if (!Dynptr.InRange(d, offset, len)) return Err(Errno.E2BIG);
        Buffer.MemoryCopy(Dynptr.Data(d) + offset, (void*)dst, len, len);
        return 0;
    }

    /// <summary>
    /// bpf_dynptr_data(ptr, offset, len): the address of <c>len</c> bytes at <c>offset</c> of the dynptr's data, or 0
    /// when the range leaves it, the dynptr is NULL or read-only.
    /// </summary>
    public static ulong DynptrData(ulong ptr, ulong offset, ulong len, ulong r4, ulong r5)
    {
        var d = (ulong*)ptr;
        if (Dynptr.Data(d) == null || Dynptr.ReadOnly(d) || !Dynptr.InRange(d, offset, len)) return 0;
        return (ulong)(Dynptr.Data(d) + offset);
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
    const uint TypeLocal = 1;

    /// <summary>bpf_dynptr_init of a LOCAL dynptr over <paramref name="size"/> bytes at <paramref name="data"/>.</summary>
    public static void InitLocal(ulong* d, byte* data, int size)
    {
        d[0] = (ulong)data;
        d[1] = (uint)size | TypeLocal << TypeShift;
    }

    public static byte* Data(ulong* d) => (byte*)d[0] + (uint)(d[1] >> 32);

    public static uint Size(ulong* d) => (uint)d[1] & SizeMask;

    public static bool ReadOnly(ulong* d) => ((uint)d[1] & RdonlyBit) != 0;

    /// <summary>bpf_dynptr_check_off_len.</summary>
    public static bool InRange(ulong* d, ulong offset, ulong len) => offset <= Size(d) && len <= Size(d) - offset;
}
