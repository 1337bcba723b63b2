using BpfJit.Frontend;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_map_lookup_elem(map, key): the value's address, or 0.</summary>
    public static ulong MapLookupElem(ulong map, ulong key, ulong r3, ulong r4, ulong r5) => BpfMap.FromHandle(map).LookupElem(key);

    /// <summary>bpf_map_lookup_percpu_elem(map, key, cpu): the address of that CPU's slot, or 0 (also when cpu is out of range).</summary>
    public static ulong MapLookupPercpuElem(ulong map, ulong key, ulong cpu, ulong r4, ulong r5) => BpfMap.FromHandle(map).LookupPerCpuElem(key, cpu);

    /// <summary>bpf_map_update_elem(map, key, value, flags): 0 or a negated errno.</summary>
    public static ulong MapUpdateElem(ulong map, ulong key, ulong value, ulong flags, ulong r5) =>
        (ulong)BpfMap.FromHandle(map).UpdateElem(key, value, flags);

    /// <summary>bpf_kptr_xchg.</summary>
    public const int KptrXchgId = 194;

    /// <summary>
    /// bpf_kptr_xchg(dst, ptr): atomically stores ptr in the kptr field dst points at and returns what it held (the kernel's
    /// xchg). The verifier makes dst a referenced kptr field of a map value and ptr a reference or NULL.
    /// </summary>
    public static ulong KptrXchg(ulong dst, ulong ptr, ulong r3, ulong r4, ulong r5) => (ulong)Interlocked.Exchange(ref *(long*)dst, (long)ptr);

    /// <summary>bpf_map_delete_elem(map, key): 0 or a negated errno.</summary>
    public static ulong MapDeleteElem(ulong map, ulong key, ulong r3, ulong r4, ulong r5) => (ulong)BpfMap.FromHandle(map).DeleteElem(key);

    /// <summary>
    /// bpf_tail_call(ctx, prog_array, index): runs the program at <c>index</c> on <c>ctx</c> and returns 0,
    /// and the engine then ends the caller with that program's result (<see cref="HelperExit.TailCall"/>).
    /// It falls through (non-zero) when the index is empty or out of range, or when
    /// <see cref="TailCallState.MaxChain"/> tail calls were already taken in this chain.
    /// </summary>
    public static ulong TailCall(ulong ctx, ulong map, ulong index, ulong r4, ulong r5)
    {
        if (BpfMap.FromHandle(map) is not ProgArrayMap array) return Err(Errno.EINVAL);
        var target = array.Program((uint)index);
        if (target == null) return Err(Errno.ENOENT);
        int depth = TailCallState.Depth;
        if (depth >= TailCallState.MaxChain) return Err(Errno.E2BIG);
        TailCallState.Depth = depth + 1;
        try
        {
            TailCallState.SetResult(target.Run(ctx));
        }
        finally
        {
            TailCallState.Depth = depth;
        }
        return 0;
    }

    /// <summary>bpf_perf_event_output(ctx, map, flags, data, size): to the map's host sink at the flags' index.</summary>
    public static ulong PerfEventOutput(ulong ctx, ulong map, ulong flags, ulong data, ulong size)
    {
        if (BpfMap.FromHandle(map) is not PerfEventArrayMap events) return Err(Errno.EINVAL);
        return (ulong)events.Output(flags, (byte*)data, size);
    }

    /// <summary>bpf_ringbuf_output(ringbuf, data, size, flags): 0, -EINVAL or -EAGAIN when full.</summary>
    public static ulong RingbufOutput(ulong map, ulong data, ulong size, ulong flags, ulong r5)
    {
        if (BpfMap.FromHandle(map) is not RingBufMap ring) return Err(Errno.EINVAL);
        return (ulong)ring.Output((byte*)data, size, flags);
    }

    /// <summary>bpf_ringbuf_reserve(ringbuf, size, flags): the record's address, or 0 when full or flags are set.</summary>
    public static ulong RingbufReserve(ulong map, ulong size, ulong flags, ulong r4, ulong r5) =>
        BpfMap.FromHandle(map) is RingBufMap ring ? ring.Reserve(size, flags) : 0;

    /// <summary>bpf_ringbuf_submit(data, flags): commits a reserved record.</summary>
    public static ulong RingbufSubmit(ulong data, ulong flags, ulong r3, ulong r4, ulong r5)
    {
        RingBufMap.Commit(data, discard: false, flags);
        return 0;
    }

    /// <summary>bpf_ringbuf_discard(data, flags): drops a reserved record.</summary>
    public static ulong RingbufDiscard(ulong data, ulong flags, ulong r3, ulong r4, ulong r5)
    {
        RingBufMap.Commit(data, discard: true, flags);
        return 0;
    }

    /// <summary>bpf_ringbuf_query(ringbuf, flags): BPF_RB_AVAIL_DATA, RING_SIZE, CONS_POS or PROD_POS; 0 otherwise.</summary>
    public static ulong RingbufQuery(ulong map, ulong flags, ulong r3, ulong r4, ulong r5) =>
        BpfMap.FromHandle(map) is RingBufMap ring ? ring.Query(flags) : 0;

    /// <summary>The bpf_spin_lock the program running on this thread holds (0: none), so that a fault can release it.</summary>
    [ThreadStatic] static ulong t_heldLock;

    /// <summary>
    /// bpf_spin_lock(lock): takes the bpf_spin_lock in a map value. A second lock while one is held would spin
    /// forever on this thread (the kernel's verifier refuses such a program); an unverified one faults instead.
    /// </summary>
    public static ulong SpinLock(ulong address, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (t_heldLock != 0)
            throw new Checked.BpfFaultException(-1, "", "helper argument", address,
                $"bpf_spin_lock: the program already holds the lock at 0x{t_heldLock:x} (one lock at a time)");
        BpfSpinLock.Lock((void*)address);
        t_heldLock = address;
        return 0;
    }

    /// <summary>
    /// bpf_spin_unlock(lock). Only the lock the program holds: the kernel's verifier refuses an unlock without a lock
    /// ("bpf_spin_unlock without taking a lock") or of another one; an unverified program faults instead of releasing a
    /// lock another thread holds.
    /// </summary>
    public static ulong SpinUnlock(ulong address, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (t_heldLock != address)
            throw new Checked.BpfFaultException(-1, "", "helper argument", address, t_heldLock == 0
                ? $"bpf_spin_unlock: the program holds no lock (0x{address:x} was not taken by bpf_spin_lock)"
                : $"bpf_spin_unlock: the program holds the lock at 0x{t_heldLock:x}, not 0x{address:x}");
        BpfSpinLock.Unlock((void*)address);
        t_heldLock = 0;
        return 0;
    }

    /// <summary>
    /// A checking engine's run ended: a program still holding a bpf_spin_lock (the kernel's verifier refuses one that can:
    /// "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region") faults, after the lock is released,
    /// so that no later run on any thread waits for it and no later fault releases it after its value is gone.
    /// </summary>
    public static void FaultIfLockHeldAtExit()
    {
        ulong held = t_heldLock;
        if (held == 0) return;
        ReleaseSpinLockAfterFault();
        throw new Checked.BpfFaultException(-1, "", "helper argument", held,
            $"the program exited holding the bpf_spin_lock at 0x{held:x} (exit inside a bpf_spin_lock-ed region)");
    }

    /// <summary>True when <paramref name="program"/> may take a bpf_spin_lock: a call of the helper, or a callx (any helper).</summary>
    public static bool MayTakeLock(ReadOnlySpan<Instruction> program)
    {
        foreach (var ins in program)
            if (ins.Opcode == Op.CallX || (ins.IsCall && ins.Src == 0 && ins.Imm == SpinLockId)) return true;
        return false;
    }

    /// <summary>A run faulted: releases the bpf_spin_lock it held, which no bpf_spin_unlock will now release.</summary>
    public static void ReleaseSpinLockAfterFault()
    {
        ulong held = t_heldLock;
        if (held == 0) return;
        t_heldLock = 0;
        BpfSpinLock.Unlock((void*)held);
    }
}
