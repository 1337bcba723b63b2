using System.Collections.Concurrent;
using System.Diagnostics;
using BpfJit.Frontend;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// <c>struct bpf_timer</c>: a 16-byte field of a HASH, LRU_HASH or ARRAY value (found from the value's BTF type,
/// <see cref="MapDefinition.TimerOffset"/>) that a program arms with bpf_timer_init, bpf_timer_set_callback and
/// bpf_timer_start, and that later runs the callback subprogram with the element's map, key and value, as the
/// kernel's hrtimer-backed timers do (kernel/bpf/helpers.c).
/// <para>
/// The field holds the timer's id (the kernel keeps a pointer there); programs cannot touch it (the verifier
/// refuses loads and stores overlapping it) and userspace copies skip it, as copy_map_value does. Callbacks run
/// one at a time on one background thread, <c>bpf-timer</c>, inside a <see cref="MapEpoch"/> read-side section, so
/// the element they were handed stays readable while they run even if it is deleted meanwhile.
/// </para>
/// <para>
/// Lifetimes are the kernel's (bpf_timer_cancel_and_free): deleting or replacing the element (a userspace or program
/// update of an ARRAY element included), evicting it from an LRU_HASH, or disposing of the map (the owner's
/// reference, the kernel's last user reference) cancels its timer without waiting for a running callback, and the
/// timer cannot be armed again on a disposed map (-EPERM). A callback that faults is contained: counted in
/// <see cref="FaultCount"/> and <see cref="LastFault"/>, a bpf_spin_lock it held released, the thread carries on.
/// </para>
/// </summary>
public static unsafe class BpfTimers
{
    /// <summary>sizeof(struct bpf_timer).</summary>
    public const int Size = 16;

    /// <summary>CLOCK_REALTIME.</summary>
    public const int ClockRealtime = 0;
    /// <summary>CLOCK_MONOTONIC.</summary>
    public const int ClockMonotonic = 1;
    /// <summary>CLOCK_BOOTTIME.</summary>
    public const int ClockBoottime = 7;
    /// <summary>MAX_CLOCKS: bpf_timer_init's flags are a clock id below it.</summary>
    public const int MaxClocks = 16;

    /// <summary>BPF_F_TIMER_ABS: bpf_timer_start's nsecs is an absolute time of the timer's clock.</summary>
    public const ulong FlagAbs = 1;
    /// <summary>BPF_F_TIMER_CPU_PIN: run the callback on the arming CPU (one thread runs every callback here).</summary>
    public const ulong FlagCpuPin = 2;

    sealed class Timer(long id, BpfMap map, byte* value, int clock)
    {
        public readonly long Id = id;
        public readonly BpfMap Map = map;
        public readonly byte* Value = value;
        public readonly int Clock = clock;
        public BpfCallback? Callback;
        /// <summary>Bumped on every arm and cancel: queue entries of an older generation are stale.</summary>
        public long Generation;
        public bool Queued;
        public bool Running;
        public bool Freed;
    }

    // Guards every timer's mutable state and the queue; the worker waits on it.
    static readonly object s_lock = new();
    static readonly ConcurrentDictionary<long, Timer> s_timers = new();
    static readonly PriorityQueue<(Timer Timer, long Generation), long> s_queue = new();
    static long s_lastId;
    static Thread? s_worker;
    static long s_faults;
    static long s_fired;
    static BpfException? s_lastFault;
    [ThreadStatic] static Timer? t_running;

    /// <summary>Callbacks that faulted (each one contained: the timer thread carries on).</summary>
    public static long FaultCount => Interlocked.Read(ref s_faults);

    /// <summary>The error of the latest faulting callback, or null.</summary>
    public static BpfException? LastFault => Volatile.Read(ref s_lastFault);

    /// <summary>Callbacks run so far (faulting ones included).</summary>
    public static long FiredCount => Interlocked.Read(ref s_fired);

    /// <summary>Timers initialised and not yet freed, over all maps.</summary>
    public static int LiveCount => s_timers.Count;

    /// <summary>True on the timer thread while it runs a callback (what a packet stack can check before blocking).</summary>
    public static bool OnTimerThread => t_running != null;

    static long Now() => (long)(Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency));

    // The timer whose field is at `field`, or null when bpf_timer_init has not run on it (lock held).
    static Timer? Find(byte* field)
    {
        long id = *(long*)field;
        return id != 0 && s_timers.TryGetValue(id, out var t) ? t : null;
    }

    /// <summary>bpf_timer_init's work once the clock is checked: -EBUSY when already initialised, -EPERM on a disposed map.</summary>
    internal static long Init(byte* field, BpfMap map, int clock)
    {
        lock (s_lock)
        {
            if (*(long*)field != 0) return -Errno.EBUSY;
            // The kernel: maps with timers must be held by userspace, or the timer could outlive every user.
            if (map.IsDisposed) return -Errno.EPERM;
            var t = new Timer(Interlocked.Increment(ref s_lastId), map, field - map.TimerOffset, clock);
            s_timers[t.Id] = t;
            *(long*)field = t.Id;
            return 0;
        }
    }

    /// <summary>bpf_timer_set_callback: -EINVAL before bpf_timer_init, -EPERM on a disposed map.</summary>
    internal static long SetCallback(byte* field, BpfCallback callback)
    {
        lock (s_lock)
        {
            var t = Find(field);
            if (t == null) return -Errno.EINVAL;
            if (t.Map.IsDisposed) return -Errno.EPERM;
            // A strong reference, as the kernel's timer holds the program: the callback lives while the timer does.
            t.Callback = callback;
            return 0;
        }
    }

    /// <summary>bpf_timer_start: -EINVAL for unknown flags, before bpf_timer_init or without a callback.</summary>
    internal static long Start(byte* field, ulong nsecs, ulong flags, Func<int, ulong> readClock)
    {
        if ((flags & ~(FlagAbs | FlagCpuPin)) != 0) return -Errno.EINVAL;
        lock (s_lock)
        {
            var t = Find(field);
            if (t == null || t.Callback == null) return -Errno.EINVAL;
            // nsecs is a duration, or with BPF_F_TIMER_ABS a time of the timer's own clock: either way a distance
            // from now, taken onto the monotonic clock the queue runs on (a time already past fires at once).
            long delta = (flags & FlagAbs) != 0 ? (long)Math.Clamp((double)nsecs - readClock(t.Clock), -1, long.MaxValue / 2) : (long)Math.Min(nsecs, (ulong)long.MaxValue / 2);
            long deadline = Now() + Math.Max(delta, 0);
            t.Generation++;
            t.Queued = true;
            s_queue.Enqueue((t, t.Generation), deadline);
            EnsureWorker();
            Monitor.PulseAll(s_lock);
            return 0;
        }
    }

    /// <summary>
    /// bpf_timer_cancel: 1 when the timer was armed, 0 when not; waits for a callback running on another thread to
    /// end (hrtimer_cancel). -EINVAL before bpf_timer_init, -EDEADLK from the timer's own callback.
    /// </summary>
    internal static long Cancel(byte* field)
    {
        lock (s_lock)
        {
            var t = Find(field);
            if (t == null) return -Errno.EINVAL;
            if (t_running == t) return -Errno.EDEADLK;
            while (t.Running) Monitor.Wait(s_lock);
            bool armed = t.Queued;
            t.Queued = false;
            t.Generation++;
            return armed ? 1 : 0;
        }
    }

    /// <summary>
    /// The kernel's bpf_timer_cancel_and_free for the value at <paramref name="value"/> of <paramref name="map"/>
    /// (its element is being deleted, replaced or overwritten): the timer stops and its field is cleared. A callback
    /// already running finishes (the element stays readable through the epoch); nothing waits for it.
    /// </summary>
    internal static void CancelAndFree(BpfMap map, byte* value)
    {
        if (map.TimerOffset < 0) return;
        byte* field = value + map.TimerOffset;
        if (Volatile.Read(ref *(long*)field) == 0) return;
        lock (s_lock)
        {
            var t = Find(field);
            *(long*)field = 0;
            if (t != null) Free(t);
        }
    }

    /// <summary>Every timer of <paramref name="map"/> is cancelled and freed (the owner disposed of the map).</summary>
    internal static void FreeAll(BpfMap map)
    {
        if (map.TimerOffset < 0) return;
        lock (s_lock)
        {
            foreach (var t in s_timers.Values)
            {
                if (t.Map != map) continue;
                *(long*)(t.Value + map.TimerOffset) = 0;
                Free(t);
            }
        }
    }

    static void Free(Timer t)
    {
        t.Freed = true;
        t.Queued = false;
        t.Generation++;
        t.Callback = null;
        s_timers.TryRemove(t.Id, out _);
    }

    static void EnsureWorker()
    {
        if (s_worker != null) return;
        s_worker = new Thread(Work) { IsBackground = true, Name = "bpf-timer" };
        s_worker.Start();
    }

    static void Work()
    {
        while (true)
        {
            Timer due;
            lock (s_lock)
            {
                while (true)
                {
                    if (!s_queue.TryPeek(out var entry, out long deadline))
                    {
                        Monitor.Wait(s_lock);
                        continue;
                    }
                    var (t, generation) = entry;
                    if (t.Freed || !t.Queued || generation != t.Generation)
                    {
                        s_queue.Dequeue();
                        continue;
                    }
                    long wait = deadline - Now();
                    if (wait > 0)
                    {
                        Monitor.Wait(s_lock, TimeSpan.FromTicks(Math.Max(1, Math.Min(wait / 100, TimeSpan.TicksPerDay))));
                        continue;
                    }
                    s_queue.Dequeue();
                    t.Queued = false;
                    t.Running = true;
                    due = t;
                    break;
                }
            }
            Fire(due);
        }
    }

    static void Fire(Timer t)
    {
        // The section is entered before the element is seen alive: a delete after the check retires the element's
        // memory with a later epoch, so it stays readable until the callback ends.
        MapEpoch.Enter();
        try
        {
            BpfCallback? callback;
            lock (s_lock) callback = t.Freed ? null : t.Callback;
            if (callback != null) Run(t, callback);
        }
        finally
        {
            MapEpoch.Exit();
            lock (s_lock)
            {
                t.Running = false;
                Monitor.PulseAll(s_lock);
            }
        }
    }

    static void Run(Timer t, BpfCallback callback)
    {
        uint scratch;
        byte* key = t.Map.TimerKey(t.Value, &scratch);
        t_running = t;
        Interlocked.Increment(ref s_fired);
        Checked.MemoryRegions.Lend((ulong)key, t.Map.KeySize);
        try
        {
            // callback(map, key, value): the verifier made sure it returns 0.
            callback(t.Map.Handle, (ulong)key, (ulong)t.Value, 0, 0);
        }
        catch (Exception e) when (RunFaults.IsFault(e))
        {
            KernelHelpers.ReleaseSpinLockAfterFault();
            var error = Checked.BpfFaultException.FromRunException(e) ?? (BpfException)e;
            Interlocked.Increment(ref s_faults);
            Volatile.Write(ref s_lastFault, error);
        }
        finally
        {
            Checked.MemoryRegions.EndLend();
            t_running = null;
        }
    }
}
