using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_timer_init.</summary>
    public const int TimerInitId = 169;
    /// <summary>bpf_timer_set_callback.</summary>
    public const int TimerSetCallbackId = 170;
    /// <summary>bpf_timer_start.</summary>
    public const int TimerStartId = 171;
    /// <summary>bpf_timer_cancel.</summary>
    public const int TimerCancelId = 172;

    static readonly Func<int, ulong> s_readClock = Clock.Read;

    /// <summary>
    /// bpf_timer_init(timer, map, flags): makes the <c>struct bpf_timer</c> at <c>timer</c> (in a value of <c>map</c>)
    /// a timer of clock <c>flags</c>: CLOCK_MONOTONIC, CLOCK_REALTIME or CLOCK_BOOTTIME, -EINVAL for any other; -EBUSY
    /// when it is already one; -EPERM when the map's owner disposed of it (<see cref="BpfTimers"/>).
    /// </summary>
    public static ulong TimerInit(ulong timer, ulong map, ulong flags, ulong r4, ulong r5)
    {
        if (flags >= BpfTimers.MaxClocks || (flags is not (BpfTimers.ClockMonotonic or BpfTimers.ClockRealtime or BpfTimers.ClockBoottime)))
            return Err(Errno.EINVAL);
        return (ulong)BpfTimers.Init((byte*)timer, BpfMap.FromHandle(map), (int)flags);
    }

    /// <summary>
    /// bpf_timer_set_callback(timer, callback): the subprogram the timer runs as <c>callback(map, key, value)</c>.
    /// -EINVAL before bpf_timer_init, -EPERM on a map its owner disposed of.
    /// </summary>
    public static ulong TimerSetCallback(ulong timer, ulong callback, ulong r3, ulong r4, ulong r5) =>
        (ulong)BpfTimers.SetCallback((byte*)timer, Callbacks.FromHandle(callback));

    /// <summary>
    /// bpf_timer_start(timer, nsecs, flags): arms the timer to fire in <c>nsecs</c> nanoseconds, or at time <c>nsecs</c>
    /// of its clock with BPF_F_TIMER_ABS (BPF_F_TIMER_CPU_PIN is accepted: one thread runs every callback). Re-arming
    /// moves the deadline. -EINVAL for other flags, before bpf_timer_init or without a callback.
    /// </summary>
    public static ulong TimerStart(ulong timer, ulong nsecs, ulong flags, ulong r4, ulong r5) =>
        (ulong)BpfTimers.Start((byte*)timer, nsecs, flags, s_readClock);

    /// <summary>
    /// bpf_timer_cancel(timer): disarms the timer, waiting for its callback if it is running on the timer thread;
    /// 1 when it was armed, 0 when not. -EINVAL before bpf_timer_init, -EDEADLK from the timer's own callback.
    /// </summary>
    public static ulong TimerCancel(ulong timer, ulong r2, ulong r3, ulong r4, ulong r5) => (ulong)BpfTimers.Cancel((byte*)timer);
}
