namespace BpfJit.Runtime.Sockets;

/// <summary>
/// Epoch-based deferred reclamation of native memory that running programs may still read.
/// A program run is bracketed by <see cref="Enter"/> / <see cref="Exit"/>; memory unlinked from
/// every shared structure is handed to <see cref="Retire"/> and freed only once every run that was
/// active when it was retired has ended. Runs that begin after the retirement cannot reach the
/// memory (it was unlinked first), so they never delay it.
/// </summary>
/// <remarks>
/// Each thread owns one slot holding the epoch it entered at (0 when quiescent). Enter writes the
/// slot and then issues a full fence before the run reads any shared pointer; Retire unlinks,
/// advances the global epoch with an interlocked increment (also a full fence) and then reads the
/// slots. By the usual store-buffer argument either the retirer sees the reader's slot or the
/// reader sees the unlink. Nested Enter calls on one thread are counted.
/// </remarks>
public static class Reclamation
{
    sealed class Slot
    {
        public long Epoch;   // epoch at entry, 0 when quiescent
        public int Depth;
    }

    readonly record struct Retired(long Epoch, Action Free);

    static long s_epoch = 1;
    static int s_pending;
    static Slot[] s_slots = [];
    static readonly object s_gate = new();
    static readonly List<Retired> s_retired = [];
    [ThreadStatic] static Slot? t_slot;

    static Slot Mine()
    {
        var slot = t_slot;
        if (slot != null) return slot;
        slot = new Slot();
        lock (s_gate) s_slots = [.. s_slots, slot];
        t_slot = slot;
        return slot;
    }

    /// <summary>Marks the current thread as inside a program run (nestable).</summary>
    public static void Enter()
    {
        var slot = Mine();
        if (slot.Depth++ > 0) return;
        Volatile.Write(ref slot.Epoch, Volatile.Read(ref s_epoch));
        Interlocked.MemoryBarrier();
    }

    /// <summary>Ends the run <see cref="Enter"/> began.</summary>
    public static void Exit()
    {
        var slot = t_slot ?? throw new InvalidOperationException("Reclamation.Exit without Enter");
        if (--slot.Depth > 0) return;
        Volatile.Write(ref slot.Epoch, 0);
        if (Volatile.Read(ref s_pending) > 0) Collect();
    }

    /// <summary>Schedules <paramref name="free"/> to run once no run that may hold the unlinked memory is active.</summary>
    public static void Retire(Action free)
    {
        ArgumentNullException.ThrowIfNull(free);
        long epoch = Interlocked.Increment(ref s_epoch) - 1;
        lock (s_gate)
        {
            s_retired.Add(new Retired(epoch, free));
            s_pending = s_retired.Count;
        }
        Collect();
    }

    /// <summary>Number of retirements not yet freed.</summary>
    public static int Pending
    {
        get { lock (s_gate) return s_retired.Count; }
    }

    /// <summary>Frees every retirement that no active run can still reach; returns how many were freed.</summary>
    public static int Collect()
    {
        long oldest = long.MaxValue;
        foreach (var slot in Volatile.Read(ref s_slots))
        {
            long e = Volatile.Read(ref slot.Epoch);
            if (e != 0 && e < oldest) oldest = e;
        }
        List<Action> free = [];
        lock (s_gate)
        {
            // A run that entered at epoch e may hold memory retired at epoch >= e.
            for (int i = s_retired.Count - 1; i >= 0; i--)
            {
                if (s_retired[i].Epoch < oldest)
                {
                    free.Add(s_retired[i].Free);
                    s_retired.RemoveAt(i);
                }
            }
            s_pending = s_retired.Count;
        }
        foreach (var f in free) f();
        return free.Count;
    }
}
