using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_map_push_elem.</summary>
    public const int MapPushElemId = 87;
    /// <summary>bpf_map_pop_elem.</summary>
    public const int MapPopElemId = 88;
    /// <summary>bpf_map_peek_elem.</summary>
    public const int MapPeekElemId = 89;

    /// <summary>
    /// bpf_map_push_elem(map, value, flags): pushes value_size bytes onto a QUEUE or STACK (<see cref="QueueStackMap.Push"/>).
    /// 0; -E2BIG when full (BPF_EXIST drops the oldest value instead); -EINVAL for other flags.
    /// </summary>
    public static ulong MapPushElem(ulong map, ulong value, ulong flags, ulong r4, ulong r5) =>
        BpfMap.FromHandle(map) is QueueStackMap q ? (ulong)q.Push((byte*)value, flags) : Err(Errno.EINVAL);

    /// <summary>bpf_map_pop_elem(map, value): removes the front value into <c>value</c>; -ENOENT (value zeroed) when empty.</summary>
    public static ulong MapPopElem(ulong map, ulong value, ulong r3, ulong r4, ulong r5) =>
        BpfMap.FromHandle(map) is QueueStackMap q ? (ulong)q.Get((byte*)value, delete: true) : Err(Errno.EINVAL);

    /// <summary>bpf_map_peek_elem(map, value): copies the front value into <c>value</c>; -ENOENT (value zeroed) when empty.</summary>
    public static ulong MapPeekElem(ulong map, ulong value, ulong r3, ulong r4, ulong r5) =>
        BpfMap.FromHandle(map) is QueueStackMap q ? (ulong)q.Get((byte*)value, delete: false) : Err(Errno.EINVAL);
}
