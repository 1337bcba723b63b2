using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// The kernel helpers this runtime implements, each defined once: the kernel's id, the prototype the
/// verifier checks, and one public static implementation method that the interpreter calls through a
/// delegate and the JIT calls directly. Map pointers are <see cref="Maps.BpfMap.Handle"/>s, callback
/// pointers are <see cref="Callbacks"/> handles. Negative results are negated errnos, as in the kernel.
/// The implementations live in the other <c>KernelHelpers.*.cs</c> files, grouped by concern.
/// </summary>
public static partial class KernelHelpers
{
    /// <summary>bpf_map_lookup_elem.</summary>
    public const int MapLookupElemId = 1;
    /// <summary>bpf_map_update_elem.</summary>
    public const int MapUpdateElemId = 2;
    /// <summary>bpf_map_delete_elem.</summary>
    public const int MapDeleteElemId = 3;
    /// <summary>bpf_ktime_get_ns.</summary>
    public const int KtimeGetNsId = 5;
    /// <summary>bpf_trace_printk.</summary>
    public const int TracePrintkId = 6;
    /// <summary>bpf_get_prandom_u32.</summary>
    public const int GetPrandomU32Id = 7;
    /// <summary>bpf_get_smp_processor_id.</summary>
    public const int GetSmpProcessorIdId = 8;
    /// <summary>bpf_tail_call.</summary>
    public const int TailCallId = 12;
    /// <summary>bpf_perf_event_output.</summary>
    public const int PerfEventOutputId = 25;
    /// <summary>bpf_spin_lock.</summary>
    public const int SpinLockId = 93;
    /// <summary>bpf_spin_unlock.</summary>
    public const int SpinUnlockId = 94;
    /// <summary>bpf_jiffies64.</summary>
    public const int Jiffies64Id = 118;
    /// <summary>bpf_ktime_get_boot_ns.</summary>
    public const int KtimeGetBootNsId = 125;
    /// <summary>bpf_ringbuf_output.</summary>
    public const int RingbufOutputId = 130;
    /// <summary>bpf_ringbuf_reserve.</summary>
    public const int RingbufReserveId = 131;
    /// <summary>bpf_ringbuf_submit.</summary>
    public const int RingbufSubmitId = 132;
    /// <summary>bpf_ringbuf_discard.</summary>
    public const int RingbufDiscardId = 133;
    /// <summary>bpf_ringbuf_query.</summary>
    public const int RingbufQueryId = 134;
    /// <summary>bpf_ktime_get_coarse_ns.</summary>
    public const int KtimeGetCoarseNsId = 160;
    /// <summary>bpf_for_each_map_elem.</summary>
    public const int ForEachMapElemId = 164;
    /// <summary>bpf_loop.</summary>
    public const int LoopId = 181;
    /// <summary>bpf_get_numa_node_id.</summary>
    public const int GetNumaNodeIdId = 42;
    /// <summary>bpf_map_lookup_percpu_elem.</summary>
    public const int MapLookupPercpuElemId = 195;
    /// <summary>bpf_ktime_get_tai_ns.</summary>
    public const int KtimeGetTaiNsId = 208;

    static Helper Def(int id, HelperFunction function, RetType ret, params ArgType[] args) =>
        new(id, HelperNames.Name(id) ?? $"helper#{id}", function, new HelperProto(ret, args));

    /// <summary>Every helper of this class, in id order.</summary>
    public static IReadOnlyList<Helper> All { get; } =
    [
        Def(MapLookupElemId, MapLookupElem, RetType.PtrToMapValueOrNull, ArgType.ConstMapPtr, ArgType.PtrToMapKey),
        Def(MapUpdateElemId, MapUpdateElem, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMapKey, ArgType.PtrToMapValue, ArgType.Anything),
        Def(MapDeleteElemId, MapDeleteElem, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMapKey),
        Def(KtimeGetNsId, KtimeGetNs, RetType.Integer),
        new Helper(TracePrintkId, "bpf_trace_printk", TracePrintk,
            new HelperProto(RetType.Integer, ArgType.PtrToMem, ArgType.ConstSize) { Variadic = true }),
        Def(TraceVprintkId, TraceVprintk, RetType.Integer, ArgType.PtrToMem, ArgType.ConstSize, ArgType.PtrToMemOrNull, ArgType.ConstSizeOrZero),
        Def(GetPrandomU32Id, GetPrandomU32, RetType.Integer),
        // The slot is below Cpu.Count, so the verifier may bound the result as the kernel does by nr_cpu_ids.
        new Helper(GetSmpProcessorIdId, "bpf_get_smp_processor_id", GetSmpProcessorId,
            new HelperProto(RetType.Integer) { RetUmax = (ulong)Maps.Cpu.Count - 1 }),
        new Helper(TailCallId, "bpf_tail_call", TailCall,
            new HelperProto(RetType.Void, ArgType.PtrToCtx, ArgType.ConstMapPtr, ArgType.Anything), HelperExit.TailCall),
        Def(GetCurrentPidTgidId, GetCurrentPidTgid, RetType.Integer),
        Def(GetCurrentUidGidId, GetCurrentUidGid, RetType.Integer),
        Def(GetCurrentCommId, GetCurrentComm, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSize),
        Def(PerfEventOutputId, PerfEventOutput, RetType.Integer,
            ArgType.PtrToCtx, ArgType.ConstMapPtr, ArgType.Anything, ArgType.PtrToMem, ArgType.ConstSizeOrZero),
        Def(GetCurrentTaskId, GetCurrentTask, RetType.Integer),
        Def(CurrentTaskUnderCgroupId, CurrentTaskUnderCgroup, RetType.Integer, ArgType.ConstMapPtr, ArgType.Anything),
        Def(PerfEventReadId, PerfEventRead, RetType.Integer, ArgType.ConstMapPtr, ArgType.Anything),
        Def(PerfEventReadValueId, PerfEventReadValue, RetType.Integer, ArgType.ConstMapPtr, ArgType.Anything, ArgType.PtrToUninitMem, ArgType.ConstSize),
        Def(SendSignalId, SendSignal, RetType.Integer, ArgType.Anything),
        Def(SendSignalThreadId, SendSignalThread, RetType.Integer, ArgType.Anything),
        // Both may sleep: the verifier refuses them before their arguments (copy_from_user_task's fourth is a task pointer).
        new Helper(CopyFromUserId, "bpf_copy_from_user", CopyFromUser,
            new HelperProto(RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything) { MightSleep = true }),
        new Helper(CopyFromUserTaskId, "bpf_copy_from_user_task", CopyFromUserTask,
            new HelperProto(RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything, ArgType.Anything, ArgType.Anything) { MightSleep = true }),
        Def(GetBranchSnapshotId, GetBranchSnapshot, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero),
        Def(GetNumaNodeIdId, GetNumaNodeId, RetType.Integer),
        Def(MapPushElemId, MapPushElem, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMapValue, ArgType.Anything),
        Def(MapPopElemId, MapPopElem, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToUninitMapValue),
        Def(MapPeekElemId, MapPeekElem, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToUninitMapValue),
        Def(SpinLockId, SpinLock, RetType.Void, ArgType.PtrToSpinLock),
        Def(SpinUnlockId, SpinUnlock, RetType.Void, ArgType.PtrToSpinLock),
        Def(StrtolId, Strtol, RetType.Integer, ArgType.PtrToMem, ArgType.ConstSize, ArgType.Anything, ArgType.PtrToAlignedLong),
        Def(StrtoulId, Strtoul, RetType.Integer, ArgType.PtrToMem, ArgType.ConstSize, ArgType.Anything, ArgType.PtrToAlignedLong),
        Def(SnprintfId, Snprintf, RetType.Integer,
            ArgType.PtrToWritableMemOrNull, ArgType.ConstSizeOrZero, ArgType.PtrToConstStr, ArgType.PtrToMemOrNull, ArgType.ConstSizeOrZero),
        Def(StrncmpId, Strncmp, RetType.Integer, ArgType.PtrToMem, ArgType.ConstSize, ArgType.PtrToConstStr),
        Def(ProbeReadUserId, ProbeReadUser, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything),
        Def(ProbeReadKernelId, ProbeReadKernel, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything),
        new Helper(ProbeReadUserStrId, "bpf_probe_read_user_str", ProbeReadUserStr,
            new HelperProto(RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything) { RetBoundedBySize = true }),
        new Helper(ProbeReadKernelStrId, "bpf_probe_read_kernel_str", ProbeReadKernelStr,
            new HelperProto(RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything) { RetBoundedBySize = true }),
        Def(Jiffies64Id, Jiffies64, RetType.Integer),
        Def(GetCurrentCgroupIdId, GetCurrentCgroupId, RetType.Integer),
        Def(GetCurrentAncestorCgroupIdId, GetCurrentAncestorCgroupId, RetType.Integer, ArgType.Anything),
        Def(GetNsCurrentPidTgidId, GetNsCurrentPidTgid, RetType.Integer, ArgType.Anything, ArgType.Anything, ArgType.PtrToUninitMem, ArgType.ConstSize),
        Def(KtimeGetBootNsId, KtimeGetBootNs, RetType.Integer),
        Def(RingbufOutputId, RingbufOutput, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMem, ArgType.ConstSizeOrZero, ArgType.Anything),
        Def(RingbufReserveId, RingbufReserve, RetType.PtrToRingbufMemOrNull, ArgType.ConstMapPtr, ArgType.ConstAllocSizeOrZero, ArgType.Anything),
        Def(RingbufSubmitId, RingbufSubmit, RetType.Void, ArgType.PtrToRingbufMem, ArgType.Anything),
        Def(RingbufDiscardId, RingbufDiscard, RetType.Void, ArgType.PtrToRingbufMem, ArgType.Anything),
        Def(RingbufQueryId, RingbufQuery, RetType.Integer, ArgType.ConstMapPtr, ArgType.Anything),
        Def(GetCurrentTaskBtfId, GetCurrentTaskBtf, RetType.TrustedPtrToTask),
        Def(KtimeGetCoarseNsId, KtimeGetCoarseNs, RetType.Integer),
        Def(ForEachMapElemId, ForEachMapElem, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToFunc, ArgType.PtrToStackOrNull, ArgType.Anything),
        Def(TimerInitId, TimerInit, RetType.Integer, ArgType.PtrToTimer, ArgType.ConstMapPtr, ArgType.Anything),
        Def(TimerSetCallbackId, TimerSetCallback, RetType.Integer, ArgType.PtrToTimer, ArgType.PtrToFunc),
        Def(TimerStartId, TimerStart, RetType.Integer, ArgType.PtrToTimer, ArgType.Anything, ArgType.Anything),
        Def(TimerCancelId, TimerCancel, RetType.Integer, ArgType.PtrToTimer),
        Def(LoopId, Loop, RetType.Integer, ArgType.Anything, ArgType.PtrToFunc, ArgType.PtrToStackOrNull, ArgType.Anything),
        Def(KptrXchgId, KptrXchg, RetType.KptrXchgOld, ArgType.KptrXchgDest, ArgType.PtrToKptrOrNullRelease),
        Def(MapLookupPercpuElemId, MapLookupPercpuElem, RetType.PtrToMapValueOrNull, ArgType.ConstMapPtr, ArgType.PtrToMapKey, ArgType.Anything),
        Def(DynptrFromMemId, DynptrFromMem, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything, ArgType.PtrToUninitLocalDynptr),
        Def(RingbufReserveDynptrId, RingbufReserveDynptr, RetType.Integer, ArgType.ConstMapPtr, ArgType.Anything, ArgType.Anything, ArgType.PtrToUninitRingbufDynptr),
        Def(RingbufSubmitDynptrId, RingbufSubmitDynptr, RetType.Void, ArgType.PtrToRingbufDynptrRelease, ArgType.Anything),
        Def(RingbufDiscardDynptrId, RingbufDiscardDynptr, RetType.Void, ArgType.PtrToRingbufDynptrRelease, ArgType.Anything),
        Def(DynptrReadId, DynptrRead, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.PtrToDynptr, ArgType.Anything, ArgType.Anything),
        Def(DynptrWriteId, DynptrWrite, RetType.Integer, ArgType.PtrToDynptr, ArgType.Anything, ArgType.PtrToMem, ArgType.ConstSizeOrZero, ArgType.Anything),
        Def(DynptrDataId, DynptrData, RetType.PtrToDynptrMemOrNull, ArgType.PtrToDynptr, ArgType.Anything, ArgType.ConstAllocSizeOrZero),
        Def(KtimeGetTaiNsId, KtimeGetTaiNs, RetType.Integer),
        Def(UserRingbufDrainId, UserRingbufDrain, RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToFunc, ArgType.PtrToStackOrNull, ArgType.Anything),
        .. BtfHelpers(),
        .. StorageHelpers(),
    ];

    /// <summary>Adds every helper of this class to <paramref name="table"/> and returns it.</summary>
    public static HelperTable AddTo(HelperTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        foreach (var helper in All) table.Add(helper);
        return table;
    }

    /// <summary>A new table with every helper of this class.</summary>
    public static HelperTable Table() => AddTo(new HelperTable());

    /// <summary>A helper's result for a negated errno.</summary>
    static ulong Err(int errno) => unchecked((ulong)(long)-errno);
}
