using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>
/// The local-storage helpers of TASK_STORAGE and CGRP_STORAGE maps (<see cref="LocalStorageMap"/>): a value per task (here a
/// host thread) or per cgroup, found by the owner's pointer and made on demand.
/// </summary>
public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_task_storage_get.</summary>
    public const int TaskStorageGetId = 156;
    /// <summary>bpf_task_storage_delete.</summary>
    public const int TaskStorageDeleteId = 157;
    /// <summary>bpf_cgrp_storage_get.</summary>
    public const int CgrpStorageGetId = 210;
    /// <summary>bpf_cgrp_storage_delete.</summary>
    public const int CgrpStorageDeleteId = 211;

    static IEnumerable<Helper> StorageHelpers() =>
    [
        new Helper(TaskStorageGetId, "bpf_task_storage_get", TaskStorageGet,
            new HelperProto(RetType.PtrToMapValueOrNull, ArgType.ConstMapPtr, ArgType.PtrToBtfIdOrNull, ArgType.PtrToMapValueOrNull, ArgType.Anything)
            { ArgBtf = "task_struct" }),
        new Helper(TaskStorageDeleteId, "bpf_task_storage_delete", TaskStorageDelete,
            new HelperProto(RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToBtfIdOrNull) { ArgBtf = "task_struct" }),
        new Helper(CgrpStorageGetId, "bpf_cgrp_storage_get", CgrpStorageGet,
            new HelperProto(RetType.PtrToMapValueOrNull, ArgType.ConstMapPtr, ArgType.PtrToBtfIdOrNull, ArgType.PtrToMapValueOrNull, ArgType.Anything)
            { ArgBtf = "cgroup" }),
        new Helper(CgrpStorageDeleteId, "bpf_cgrp_storage_delete", CgrpStorageDelete,
            new HelperProto(RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToBtfIdOrNull) { ArgBtf = "cgroup" }),
    ];

    /// <summary>
    /// bpf_task_storage_get(map, task, value, flags): the task's value in a TASK_STORAGE map, made (zeroed, then
    /// <c>value</c>'s bytes when it is not NULL) with BPF_LOCAL_STORAGE_GET_F_CREATE; NULL for other flags, a NULL task,
    /// no value without the flag, or an element that cannot be charged. The task is a <see cref="GetCurrentTaskBtf"/>
    /// handle: its thread's storage.
    /// </summary>
    public static ulong TaskStorageGet(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => StorageGet(r1, r2, r3, r4);

    /// <summary>bpf_task_storage_delete(map, task): 0; -ENOENT when the task has no value; -EINVAL for a NULL task.</summary>
    public static ulong TaskStorageDelete(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => StorageDelete(r1, r2);

    /// <summary>
    /// bpf_cgrp_storage_get(map, cgroup, value, flags): as <see cref="TaskStorageGet"/> for a cgroup. An SK_LOOKUP program
    /// has no way to a <c>struct cgroup</c> pointer (Linux 6.18 gives it none of the kfuncs that return one), so every call
    /// that passes the verifier passes NULL and gets NULL, as in the kernel.
    /// </summary>
    public static ulong CgrpStorageGet(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => StorageGet(r1, r2, r3, r4);

    /// <summary>bpf_cgrp_storage_delete(map, cgroup): as <see cref="TaskStorageDelete"/>; -EINVAL for the NULL an SK_LOOKUP program can pass.</summary>
    public static ulong CgrpStorageDelete(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => StorageDelete(r1, r2);

    // The owner a handle stands for: a task handle's thread id (the low 32 bits, CurrentTaskTag above them).
    static ulong StorageOwner(ulong handle) => (uint)handle;

    static ulong StorageGet(ulong map, ulong owner, ulong value, ulong flags)
    {
        if ((flags & ~LocalStorageMap.GetFCreate) != 0 || owner == 0) return 0;
        return BpfMap.FromHandle(map) is LocalStorageMap s
            ? s.Get(StorageOwner(owner), (byte*)value, (flags & LocalStorageMap.GetFCreate) != 0) : 0;
    }

    static ulong StorageDelete(ulong map, ulong owner)
    {
        if (owner == 0) return Err(Errno.EINVAL);
        return BpfMap.FromHandle(map) is LocalStorageMap s ? (ulong)(long)s.Remove(StorageOwner(owner)) : Err(Errno.EINVAL);
    }
}
