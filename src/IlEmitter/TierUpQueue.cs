using System.Collections.Concurrent;
using System.Reflection.Emit;
using BpfJit.IlEmitter.Hosting;

namespace BpfJit.IlEmitter;

/// <summary>A snapshot of <see cref="TierUpQueue"/>'s counters (totals since the process started).</summary>
/// <param name="Queued">Background compiles accepted.</param>
/// <param name="Completed">Compiles that switched their program to RyuJIT's code.</param>
/// <param name="Failed">Compiles RyuJIT rejected (the program stays on the interpreter).</param>
/// <param name="Shed">
/// Compiles refused because <see cref="TierUpQueue.MaxPending"/> were already waiting: those programs run on
/// the interpreter for good (correct, slower), and their <see cref="CompiledProgram.JitCompleted"/> faults.
/// </param>
/// <param name="Abandoned">Queued compiles skipped because nothing referenced their program any more.</param>
/// <param name="Pending">Compiles waiting or running now.</param>
public readonly record struct TierUpStatistics(long Queued, long Completed, long Failed, long Shed, long Abandoned, int Pending);

/// <summary>
/// The background compiles of <see cref="JitOptions.Tiered"/> programs: one queue drained by at most
/// <see cref="MaxWorkers"/> thread-pool workers, so a burst of loads never turns into one thread per compile
/// (thread injection and every compile slowing every other). Past <see cref="MaxPending"/> waiting compiles,
/// new ones are shed, visibly: counted in <see cref="Statistics"/>, the program's
/// <see cref="CompiledProgram.JitCompleted"/> faulted with a <see cref="BpfCompileException"/>, the program
/// correct on the interpreter. A queued compile whose program was collected before its turn is skipped.
/// </summary>
public static class TierUpQueue
{
    /// <summary>The default of <see cref="MaxPending"/>.</summary>
    public const int DefaultMaxPending = 4096;

    sealed record Work(WeakReference<CompiledProgram> Program, DynamicMethod Method, JitClosure Closure);

    static readonly ConcurrentQueue<Work> s_queue = new();
    static int s_maxPending = DefaultMaxPending;
    static int s_pending, s_workers;
    static long s_queued, s_completed, s_failed, s_shed, s_abandoned;

    /// <summary>Compiles that may wait at once before new ones are shed (at least 1).</summary>
    public static int MaxPending
    {
        get => Volatile.Read(ref s_maxPending);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Volatile.Write(ref s_maxPending, value);
        }
    }

    /// <summary>Workers compiling at once: half the processors, at least one (loads and lookups keep the rest).</summary>
    public static int MaxWorkers { get; } = Math.Max(1, Environment.ProcessorCount / 2);

    /// <summary>The counters now.</summary>
    public static TierUpStatistics Statistics => new(Interlocked.Read(ref s_queued), Interlocked.Read(ref s_completed),
        Interlocked.Read(ref s_failed), Interlocked.Read(ref s_shed), Interlocked.Read(ref s_abandoned), Volatile.Read(ref s_pending));

    internal static void Enqueue(CompiledProgram compiled, DynamicMethod method, JitClosure closure)
    {
        int pending = Interlocked.Increment(ref s_pending);
        if (pending > MaxPending)
        {
            Interlocked.Decrement(ref s_pending);
            Interlocked.Increment(ref s_shed);
            compiled.TierUpFailed(new BpfCompileException(-1, "", $"background compile shed: {pending - 1} compiles were pending (TierUpQueue.MaxPending {MaxPending}); the program runs on the interpreter"));
            return;
        }
        Interlocked.Increment(ref s_queued);
        s_queue.Enqueue(new Work(new WeakReference<CompiledProgram>(compiled), method, closure));
        if (TryClaimWorker()) ThreadPool.UnsafeQueueUserWorkItem<object?>(static _ => Drain(), null, preferLocal: false);
    }

    static bool TryClaimWorker()
    {
        int workers = Volatile.Read(ref s_workers);
        while (workers < MaxWorkers)
        {
            int seen = Interlocked.CompareExchange(ref s_workers, workers + 1, workers);
            if (seen == workers) return true;
            workers = seen;
        }
        return false;
    }

    static void Drain()
    {
        while (true)
        {
            while (s_queue.TryDequeue(out var work))
            {
                Compile(work);
                Interlocked.Decrement(ref s_pending);
            }
            Interlocked.Decrement(ref s_workers);
            // An enqueue between the last TryDequeue and the decrement may have found every worker claimed and
            // started none: look again, and keep going when the work is still there and a worker may start.
            if (s_queue.IsEmpty || !TryClaimWorker()) return;
        }
    }

    static void Compile(Work work)
    {
        if (!work.Program.TryGetTarget(out var compiled))
        {
            Interlocked.Increment(ref s_abandoned);
            return;
        }
        try
        {
            compiled.TierUp(DynamicMethodHost.Bind(work.Method, work.Closure));
            Interlocked.Increment(ref s_completed);
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref s_failed);
            compiled.TierUpFailed(e);
        }
    }
}
