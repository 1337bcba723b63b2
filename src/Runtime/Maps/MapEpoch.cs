using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// Epoch-based deferred reclamation (RCU-like) for map memory that running programs may still read.
/// <para>
/// Readers: every program run, and every userspace map operation, is a read-side section between
/// <see cref="Enter"/> and <see cref="Exit"/> (sections nest; only the outermost one counts). Entering
/// publishes the current global epoch in the thread's slot with a plain (release) store and no fence;
/// leaving clears it. The slot is alone on its cache lines, so readers on different processors share no
/// line they write.
/// </para>
/// <para>
/// Writers: a map first unpublishes memory (unlinks an element, swaps a value), then calls
/// <see cref="Retire(void*)"/>, which advances the global epoch to <c>e</c> (a full fence: the unlink is
/// visible to every processor before <c>e</c> exists) and tags the memory with it. A reader that can still
/// hold a pointer to the memory entered before the advance, so its slot shows an epoch below <c>e</c>; a
/// reader whose slot shows <c>e</c> or more read the global epoch after the advance, and so (its later map
/// reads being ordered after that read) cannot reach the memory. The memory is freed once no slot shows an
/// epoch below its tag (idle slots show none). <see cref="Collect"/> does that; every
/// <see cref="CollectEvery"/> retirements <see cref="Retire(void*)"/> queues a collection on the thread
/// pool, so the retiring thread (a map update, perhaps inside a program) never waits for it.
/// </para>
/// <para>
/// Why the reader needs no fence (the asymmetric Dekker pairing, as in the kernel's and liburcu's
/// membarrier-based RCU): a reader does "store slot, then load map pointers", the collector "unlink
/// (already visible), then load slots". Without fences a processor may let its loads pass its own
/// earlier store (the store waits in its store buffer), so a collector could read an idle slot while the
/// reader already holds the pointer. <see cref="Collect"/> therefore calls
/// <see cref="Interlocked.MemoryBarrierProcessWide"/> (Linux <c>membarrier</c>) between reading the global
/// epoch and reading the slots: it returns only after every thread of the process has executed a full
/// barrier. For a reader that barrier falls either after its slot store, which is then visible to the
/// slot scan that follows (the reader is seen and its memory kept), or before it, so the reader's map
/// loads come after the barrier, after the unlink was visible, and cannot return the unlinked memory.
/// Either way nothing a reader can hold is freed. The price moves to the collector (microseconds per
/// collection, once per <see cref="CollectEvery"/> retirements) from every lookup (a locked instruction).
/// </para>
/// </summary>
public static unsafe class MapEpoch
{
    /// <summary>Retirements between automatic <see cref="Collect"/> calls.</summary>
    public const int CollectEvery = 64;

    // Padded so that the line holding Epoch and Depth (written by the owner on every Enter and Exit) holds
    // nothing of the objects allocated next to the slot: 64 bytes of the object before them, 64 after.
    [StructLayout(LayoutKind.Explicit)]
    sealed class Slot
    {
        [FieldOffset(64)] public long Epoch;     // 0 = not inside a read-side section
        [FieldOffset(72)] public int Depth;      // nesting, touched only by the owning thread
        [FieldOffset(76)] public int InUse;      // 1 while a live thread owns the slot
        [FieldOffset(136)] public long End;      // padding: makes the object end 64 bytes after InUse
    }

    // Frees the slot for reuse when its thread dies: the [ThreadStatic] owner becomes unreachable.
    sealed class SlotOwner(Slot slot)
    {
        public readonly Slot Slot = slot;
        ~SlotOwner()
        {
            Volatile.Write(ref Slot.Epoch, 0);
            Volatile.Write(ref Slot.InUse, 0);
        }
    }

    readonly struct Retired(long tag, nint memory, Action? free, object? owner = null)
    {
        public readonly long Tag = tag;
        public readonly nint Memory = memory;
        public readonly Action? Free = free;
        public readonly object? Owner = owner;
    }

    static long s_epoch = 1;
    static Slot[] s_slots = [];
    static readonly Lock s_slotLock = new();
    static readonly Lock s_retiredLock = new();
    static readonly List<Retired> s_retired = new(16); // a capacity: see NodePool's list
    static int s_sinceCollect;
    static int s_collectQueued;
    static readonly Lock s_collectLock = new();
    static long s_reclaimed;

    [ThreadStatic] static Slot? t_slot;
    [ThreadStatic] static SlotOwner? t_owner;

    /// <summary>Enters a read-side section on this thread (cheap; nests).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Enter()
    {
        var slot = t_slot ?? Register();
        // No fence: Collect's process-wide barrier pairs with this store (see the class comment).
        if (slot.Depth++ == 0) Volatile.Write(ref slot.Epoch, Volatile.Read(ref s_epoch));
    }

    /// <summary>Leaves the read-side section entered by the matching <see cref="Enter"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Exit()
    {
        var slot = t_slot;
        if (slot == null || slot.Depth == 0) throw new InvalidOperationException("MapEpoch.Exit without Enter");
        if (--slot.Depth == 0) Volatile.Write(ref slot.Epoch, 0);
    }

    /// <summary>Enters a read-side section for a <c>using</c> block.</summary>
    public static Section Protect()
    {
        Enter();
        return new Section();
    }

    /// <summary>A read-side section; disposing it leaves the section.</summary>
    public readonly struct Section : IDisposable
    {
        /// <summary>Leaves the section.</summary>
        public void Dispose() => Exit();
    }

    /// <summary>True when this thread is inside a read-side section.</summary>
    public static bool IsInside => t_slot is { Depth: > 0 };

    /// <summary>Memory retired and not yet freed.</summary>
    public static int Pending
    {
        get { lock (s_retiredLock) return s_retired.Count; }
    }

    /// <summary>Reader slots ever created (a dead thread's slot is reused by the next new thread).</summary>
    public static int ReaderSlots => Volatile.Read(ref s_slots).Length;

    /// <summary>Retired blocks freed since the process started.</summary>
    public static long Reclaimed => Interlocked.Read(ref s_reclaimed);

    /// <summary>Frees <paramref name="memory"/> (from the runtime's native allocator) once no reader can hold it.</summary>
    public static void Retire(void* memory) => Add(new Retired(Advance(), (nint)memory, null));

    /// <summary>
    /// Frees <paramref name="memory"/> once no reader can hold it, remembering <paramref name="owner"/>
    /// until then (checked mode asks a map for the blocks it retired: a program may still read them).
    /// </summary>
    internal static void Retire(void* memory, object owner) => Add(new Retired(Advance(), (nint)memory, null, owner));

    /// <summary>The blocks retired with <paramref name="owner"/> and not yet freed (checked mode).</summary>
    internal static List<nint> PendingOf(object owner)
    {
        var blocks = new List<nint>();
        lock (s_retiredLock)
            foreach (var r in s_retired)
                if (ReferenceEquals(r.Owner, owner)) blocks.Add(r.Memory);
        return blocks;
    }

    /// <summary>Runs <paramref name="free"/> once no reader can hold what it frees.</summary>
    public static void Retire(Action free)
    {
        ArgumentNullException.ThrowIfNull(free);
        Add(new Retired(Advance(), 0, free));
    }

    static long Advance() => Interlocked.Increment(ref s_epoch);   // a full fence: the unlink is visible first

    static void Add(Retired item)
    {
        bool collect;
        lock (s_retiredLock)
        {
            s_retired.Add(item);
            collect = ++s_sinceCollect >= CollectEvery;
        }
        if (collect && Interlocked.Exchange(ref s_collectQueued, 1) == 0)
            ThreadPool.UnsafeQueueUserWorkItem(static _ =>
            {
                Volatile.Write(ref s_collectQueued, 0);
                Collect();
            }, null);
    }

    /// <summary>
    /// Frees every retired block no reader can still hold; returns how many were freed. Collections run one
    /// at a time: when this returns, no queued collection is still freeing.
    /// </summary>
    public static int Collect()
    {
        // A free may retire more (an outer map-in-map releasing its inner maps): passes go on until one frees
        // nothing, so one call leaves nothing behind that could already be freed.
        lock (s_collectLock)
        {
            int total = 0, freed;
            while ((freed = CollectCore()) > 0) total += freed;
            return total;
        }
    }

    static int CollectCore()
    {
        // Blocks retired after this point carry larger tags, so readers idle during the scan cannot matter.
        long oldest = Volatile.Read(ref s_epoch);
        // Every reader's slot store made before this point is visible after it (see the class comment).
        Interlocked.MemoryBarrierProcessWide();
        foreach (var slot in Volatile.Read(ref s_slots))
        {
            long e = Volatile.Read(ref slot.Epoch);
            if (e != 0 && e < oldest) oldest = e;
        }
        List<Retired>? free = null;
        lock (s_retiredLock)
        {
            s_sinceCollect = 0;
            for (int i = s_retired.Count - 1; i >= 0; i--)
            {
                if (s_retired[i].Tag > oldest) continue;
                (free ??= []).Add(s_retired[i]);
                s_retired[i] = s_retired[^1];
                s_retired.RemoveAt(s_retired.Count - 1);
            }
        }
        if (free == null) return 0;
        foreach (var item in free)
        {
            if (item.Free != null) item.Free();
            else Native.Free((void*)item.Memory);
        }
        Interlocked.Add(ref s_reclaimed, free.Count);
        return free.Count;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static Slot Register()
    {
        lock (s_slotLock)
        {
            Slot? slot = null;
            foreach (var s in s_slots)
            {
                if (Interlocked.CompareExchange(ref s.InUse, 1, 0) == 0) { slot = s; break; }
            }
            if (slot == null)
            {
                slot = new Slot { InUse = 1 };
                var grown = new Slot[s_slots.Length + 1];
                s_slots.CopyTo(grown, 0);
                grown[^1] = slot;
                Volatile.Write(ref s_slots, grown);
            }
            slot.Depth = 0;
            slot.Epoch = 0;
            t_owner = new SlotOwner(slot);
            t_slot = slot;
            return slot;
        }
    }
}
