using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>
/// Helpers whose kernel meaning has nothing to act on in a host process, given the result the kernel gives when it
/// cannot act: signals, branch records, perf counters and user memory.
/// </summary>
public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_perf_event_read.</summary>
    public const int PerfEventReadId = 22;
    /// <summary>bpf_perf_event_read_value.</summary>
    public const int PerfEventReadValueId = 55;
    /// <summary>bpf_send_signal.</summary>
    public const int SendSignalId = 109;
    /// <summary>bpf_send_signal_thread.</summary>
    public const int SendSignalThreadId = 117;
    /// <summary>bpf_copy_from_user.</summary>
    public const int CopyFromUserId = 148;
    /// <summary>bpf_copy_from_user_task.</summary>
    public const int CopyFromUserTaskId = 191;
    /// <summary>bpf_get_branch_snapshot.</summary>
    public const int GetBranchSnapshotId = 176;

    /// <summary>sizeof(struct bpf_perf_event_value): counter, enabled, running.</summary>
    public const int PerfEventValueSize = 24;

    /// <summary>
    /// bpf_send_signal(sig): -EPERM. The kernel signals <c>current</c>, which for an SK_LOOKUP program is whatever task
    /// the packet arrived on, often a kernel thread (ksoftirqd), for which it returns -EPERM before it looks at the signal;
    /// here <c>current</c> is the host's thread, and a packet must not be able to signal (or kill) the host, so every call
    /// is that refusal.
    /// </summary>
    public static ulong SendSignal(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Err(Errno.EPERM);

    /// <summary>bpf_send_signal_thread(sig): -EPERM, as <see cref="SendSignal"/>.</summary>
    public static ulong SendSignalThread(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Err(Errno.EPERM);

    /// <summary>
    /// bpf_get_branch_snapshot(entries, size, flags): the kernel's answer on a machine without last-branch records
    /// (perf_snapshot_branch_stack records nothing): -EINVAL for flags other than 0, else -ENOENT; the buffer is not
    /// written.
    /// </summary>
    public static ulong GetBranchSnapshot(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r3 != 0 ? Err(Errno.EINVAL) : Err(Errno.ENOENT);

    /// <summary>
    /// bpf_perf_event_read(map, flags): a PERF_EVENT_ARRAY slot's counter. -EINVAL for flags past the index mask, -E2BIG
    /// for an index past max_entries (BPF_F_CURRENT_CPU: the current CPU's), -ENOENT for an empty slot. A slot here
    /// holds a host sink, which stands for a BPF_OUTPUT software event: it counts nothing, so its counter is 0.
    /// </summary>
    public static ulong PerfEventRead(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (BpfMap.FromHandle(r1) is not PerfEventArrayMap events) return Err(Errno.EINVAL);
        int rc = events.ReadCounter(r2);
        return rc < 0 ? Err(-rc) : 0;
    }

    /// <summary>
    /// bpf_perf_event_read_value(map, flags, buf, size): as <see cref="PerfEventRead"/>, into
    /// <c>struct bpf_perf_event_value { counter; enabled; running; }</c>, all 0 for a host sink; -EINVAL for a size other
    /// than 24; on any failure the buffer is zeroed, as the kernel's.
    /// </summary>
    public static ulong PerfEventReadValue(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        var buf = new Span<byte>((byte*)r3, (int)r4);
        buf.Clear();
        if (r4 != PerfEventValueSize) return Err(Errno.EINVAL);
        if (BpfMap.FromHandle(r1) is not PerfEventArrayMap events) return Err(Errno.EINVAL);
        int rc = events.ReadCounter(r2);
        return rc < 0 ? Err(-rc) : 0;
    }

    /// <summary>
    /// bpf_copy_from_user(dst, size, user_ptr). The kernel's prototype may sleep, so the verifier refuses it in every
    /// program BpfJit loads (none is sleepable) and this never runs from a verified program. It does what a sleepable one
    /// would get here: as <see cref="ProbeReadUser"/>, BpfJit reads no memory on a program's
    /// behalf (the host's address space is not the program's to read): every copy of at least one byte fails as the
    /// kernel's copy_from_user at an unmapped address, dst zeroed, -EFAULT; an empty copy returns 0.
    /// </summary>
    public static ulong CopyFromUser(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r2 == 0) return 0;
        new Span<byte>((byte*)r1, (int)r2).Clear();
        return Err(Errno.EFAULT);
    }

    /// <summary>
    /// bpf_copy_from_user_task(dst, size, user_ptr, task, flags): refused by the verifier as <see cref="CopyFromUser"/>;
    /// -EINVAL for flags, 0 for an empty copy, else dst zeroed and -EFAULT.
    /// </summary>
    public static ulong CopyFromUserTask(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r5 != 0) return Err(Errno.EINVAL);
        return CopyFromUser(r1, r2, r3, 0, 0);
    }
}
