using BpfJit.Runtime;

namespace BpfJit.Tests.Verifier;

/// <summary>The SK_LOOKUP helper prototypes (kernel ids and argument types) with dummy bodies, for verifier tests.</summary>
public static class SkLookupTestHelpers
{
    /// <summary>A body that does nothing; the verifier only reads prototypes.</summary>
    public static ulong Dummy(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    static Helper H(int id, string name, RetType ret, params ArgType[] args) => new(id, "bpf_" + name, Dummy, new HelperProto(ret, args));

    /// <summary>The registry the verifier tests use.</summary>
    public static HelperTable Table { get; } = Build();

    static HelperTable Build()
    {
        var t = new HelperTable();
        t.Add(H(1, "map_lookup_elem", RetType.PtrToMapValueOrNull, ArgType.ConstMapPtr, ArgType.PtrToMapKey));
        t.Add(H(2, "map_update_elem", RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMapKey, ArgType.PtrToMapValue, ArgType.Anything));
        t.Add(H(3, "map_delete_elem", RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMapKey));
        t.Add(H(5, "ktime_get_ns", RetType.Integer));
        t.Add(H(6, "trace_printk", RetType.Integer, ArgType.PtrToMem, ArgType.ConstSize));
        t.Add(H(7, "get_prandom_u32", RetType.Integer));
        t.Add(new Helper(12, "bpf_tail_call", Dummy, new HelperProto(RetType.Void, ArgType.PtrToCtx, ArgType.ConstMapPtr, ArgType.Anything), HelperExit.TailCall));
        t.Add(H(25, "perf_event_output", RetType.Integer, ArgType.PtrToCtx, ArgType.ConstMapPtr, ArgType.Anything, ArgType.PtrToMem, ArgType.ConstSizeOrZero));
        t.Add(H(86, "sk_release", RetType.Integer, ArgType.PtrToSocket));
        t.Add(H(93, "spin_lock", RetType.Void, ArgType.PtrToSpinLock));
        t.Add(H(94, "spin_unlock", RetType.Void, ArgType.PtrToSpinLock));
        t.Add(H(118, "jiffies64", RetType.Integer));
        t.Add(H(124, "sk_assign", RetType.Integer, ArgType.PtrToCtx, ArgType.PtrToSocketOrNull, ArgType.Anything));
        t.Add(H(125, "ktime_get_boot_ns", RetType.Integer));
        t.Add(H(130, "ringbuf_output", RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToMem, ArgType.ConstSizeOrZero, ArgType.Anything));
        t.Add(H(131, "ringbuf_reserve", RetType.PtrToRingbufMemOrNull, ArgType.ConstMapPtr, ArgType.ConstAllocSizeOrZero, ArgType.Anything));
        t.Add(H(132, "ringbuf_submit", RetType.Void, ArgType.PtrToRingbufMem, ArgType.Anything));
        t.Add(H(133, "ringbuf_discard", RetType.Void, ArgType.PtrToRingbufMem, ArgType.Anything));
        t.Add(H(134, "ringbuf_query", RetType.Integer, ArgType.ConstMapPtr, ArgType.Anything));
        t.Add(H(160, "ktime_get_coarse_ns", RetType.Integer));
        t.Add(H(164, "for_each_map_elem", RetType.Integer, ArgType.ConstMapPtr, ArgType.PtrToFunc, ArgType.PtrToStackOrNull, ArgType.Anything));
        t.Add(H(181, "loop", RetType.Integer, ArgType.Anything, ArgType.PtrToFunc, ArgType.PtrToStackOrNull, ArgType.Anything));
        // The current-task, string and probe-read helpers, and the CPU id whose result the runtime bounds by its CPU
        // count: with the runtime's own prototypes (their refinements of the result are part of the prototype).
        foreach (var h in KernelHelpers.All)
        {
            if (h.Id is KernelHelpers.GetSmpProcessorIdId or (>= KernelHelpers.GetCurrentPidTgidId and <= KernelHelpers.GetCurrentCommId)
                or KernelHelpers.GetCurrentTaskId or KernelHelpers.GetCurrentTaskBtfId or KernelHelpers.GetNsCurrentPidTgidId or KernelHelpers.StrtolId or KernelHelpers.StrtoulId
                or (>= KernelHelpers.ProbeReadUserId and <= KernelHelpers.ProbeReadKernelStrId)
                or (>= KernelHelpers.TimerInitId and <= KernelHelpers.TimerCancelId)
                or KernelHelpers.DynptrReadId or KernelHelpers.DynptrDataId or KernelHelpers.UserRingbufDrainId
                || KernelHelpers.BtfHelperIds.Contains(h.Id))
                t.Add(new Helper(h.Id, h.Name, Dummy, h.Proto));
        }
        // The QUEUE/STACK helpers, the dynptr helpers that make and release stack dynptrs and the local-storage helpers: the runtime's prototypes.
        int[] queueStackAndDynptr =
        [
            KernelHelpers.MapPushElemId, KernelHelpers.MapPopElemId, KernelHelpers.MapPeekElemId, KernelHelpers.DynptrFromMemId,
            KernelHelpers.RingbufReserveDynptrId, KernelHelpers.RingbufSubmitDynptrId, KernelHelpers.RingbufDiscardDynptrId, KernelHelpers.DynptrWriteId,
            KernelHelpers.TaskStorageGetId, KernelHelpers.TaskStorageDeleteId, KernelHelpers.CgrpStorageGetId, KernelHelpers.CgrpStorageDeleteId,
            KernelHelpers.CurrentTaskUnderCgroupId,
        ];
        foreach (var h in KernelHelpers.All)
            if (queueStackAndDynptr.Contains(h.Id)) t.Add(new Helper(h.Id, h.Name, Dummy, h.Proto));
        return t;
    }
}
