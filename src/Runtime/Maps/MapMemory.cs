using BpfJit.Frontend;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// Map memory accounting, the counterpart of the kernel's charging of map memory to the creating memory
/// cgroup: each map's footprint is computed from its attributes before anything is allocated and charged
/// against <see cref="Limit"/>; a map that does not fit is refused with ENOMEM, as BPF_MAP_CREATE is when
/// the cgroup or the machine cannot give the memory. The charge is returned when the map's memory is freed.
/// </summary>
public static class MapMemory
{
    static long s_limit = DefaultLimit();
    static long s_charged;

    /// <summary>
    /// The bytes all live maps together may take. Default: the memory the process may use (physical memory,
    /// or the container's limit: <see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>). A host lowers it to
    /// bound what untrusted map declarations can take.
    /// </summary>
    public static long Limit
    {
        get => Volatile.Read(ref s_limit);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref s_limit, value);
        }
    }

    /// <summary>The bytes charged by live maps now.</summary>
    public static long Charged => Volatile.Read(ref s_charged);

    static long DefaultLimit()
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return available > 0 ? available : long.MaxValue;
    }

    /// <summary>
    /// What a map of <paramref name="a"/> takes in this runtime, in bytes, saturating at <see cref="ulong.MaxValue"/>
    /// (far above any limit) so no attribute can overflow it: the native header, the element area allocated at
    /// creation (ARRAY, per-CPU ARRAY, RINGBUF, fd arrays) and, for hash maps, every element max_entries allows, as the
    /// kernel charges a preallocated hash map. Maps that allocate per element (LPM_TRIE, SOCKHASH, HASH and PERCPU_HASH
    /// with BPF_F_NO_PREALLOC) are charged their fixed part here and each element when it is inserted
    /// (<see cref="BpfMap.ChargeElement"/>), as the kernel charges what bpf_map_kmalloc_node allocates.
    /// </summary>
    // Saturating 64-bit arithmetic rather than UInt128: crossgen2 leaves every method that touches Int128/UInt128 to
    // the JIT (their layout is not fixed across runtimes), and this runs in every process's first map creation
    // (docs/perf.md, "Cold start").
    public static ulong Footprint(in MapAttributes a)
    {
        ulong m = a.MaxEntries;
        ulong key = Round8(a.KeySize), value = Round8(a.ValueSize);
        ulong cpus = (uint)Cpu.Count;
        // Without preallocation a hash map's elements are charged on insert: only the buckets now.
        if (a.Type is MapType.Hash or MapType.PerCpuHash && (a.Flags & MapFlags.NoPrealloc) != 0)
            return BpfMap.HeaderSize + Buckets(a.MaxEntries);
        ulong body = a.Type switch
        {
            MapType.Array => Mul(m, value),
            MapType.PerCpuArray => Mul(RoundUp(Mul(m, value), 64), cpus),
            MapType.Hash or MapType.LruHash or MapType.HashOfMaps => Add(Buckets(a.MaxEntries), Mul(m, HashElementHeader + key + (a.Type == MapType.HashOfMaps ? 8 : value))),
            MapType.PerCpuHash or MapType.LruPerCpuHash => Add(Buckets(a.MaxEntries), Mul(m, Add(HashElementHeader + key, Mul(value, cpus)))),
            MapType.ProgArray => m * 12,
            MapType.PerfEventArray or MapType.CgroupArray or MapType.SockMap or MapType.ArrayOfMaps or MapType.ReuseportSockArray => m * 8,
            MapType.RingBuf => m + 64,
            MapType.UserRingBuf => 2 * m,
            // max_entries + 1 slots of value_size bytes, unpadded (queue_stack_map_mem_usage).
            MapType.Queue or MapType.Stack => (m + 1) * a.ValueSize,
            _ => 0,
        };
        return Add(BpfMap.HeaderSize, body);
    }

    /// <summary>The element header of <see cref="HashMap"/> (next, LRU links, hash, reference count).</summary>
    const uint HashElementHeader = 32;

    /// <summary>A hash map's bucket array: max_entries rounded up to a power of two (at most 2^22), a pointer each.</summary>
    static ulong Buckets(uint maxEntries) => (ulong)Math.Max(1u, System.Numerics.BitOperations.RoundUpToPowerOf2(Math.Clamp(maxEntries, 1u, 1u << 22))) * 8;

    static ulong Round8(uint n) => ((ulong)n + 7) & ~7UL;

    static ulong RoundUp(ulong n, uint to) => n > ulong.MaxValue - to ? ulong.MaxValue : (n + to - 1) / to * to;

    // Not Math.BigMul: it is written over UInt128, which keeps this method out of the ReadyToRun image too.
    static ulong Mul(ulong x, ulong y) => x != 0 && y > ulong.MaxValue / x ? ulong.MaxValue : x * y;

    static ulong Add(ulong x, ulong y) => x > ulong.MaxValue - y ? ulong.MaxValue : x + y;

    /// <summary>Charges <paramref name="bytes"/>, or throws ENOMEM naming the map when the limit does not allow them.</summary>
    internal static long Charge(string name, in MapAttributes a, ulong bytes)
    {
        long limit = Limit;
        while (true)
        {
            long now = Volatile.Read(ref s_charged);
            CheckFits(name, a, bytes, now, limit);
            if (Interlocked.CompareExchange(ref s_charged, now + (long)bytes, now) == now) return (long)bytes;
        }
    }

    /// <summary>
    /// What <see cref="Charge"/> checks, without charging: throws ENOMEM naming the map when <paramref name="bytes"/> do not
    /// fit <see cref="Limit"/> beside what live maps hold and <paramref name="pending"/> more (the maps an object's load
    /// would have created before this one).
    /// </summary>
    internal static void CheckFits(string name, in MapAttributes a, ulong bytes, long pending) => CheckFits(name, a, bytes, Charged + pending, Limit);

    static void CheckFits(string name, in MapAttributes a, ulong bytes, long held, long limit)
    {
        if (bytes > (ulong)limit)
            MapCreateChecks.Fail(name, a, Errno.ENOMEM, $"the map needs {Describe(bytes)}, more than the map memory limit of {Describe((ulong)limit)}");
        if (held > limit || (long)bytes > limit - held)
            MapCreateChecks.Fail(name, a, Errno.ENOMEM,
                $"the map needs {Describe(bytes)}; live maps hold {Describe((ulong)held)} of the map memory limit of {Describe((ulong)limit)}");
    }

    /// <summary>
    /// Charges <paramref name="bytes"/> of an element allocated on insert, if the limit allows them beside what live
    /// maps hold: false means the caller fails the insert with ENOMEM, as the kernel's allocation under the map's
    /// memory cgroup fails.
    /// </summary>
    internal static bool TryCharge(long bytes)
    {
        while (true)
        {
            long now = Volatile.Read(ref s_charged);
            if (now + bytes > Limit) return false;
            if (Interlocked.CompareExchange(ref s_charged, now + bytes, now) == now) return true;
        }
    }

    /// <summary>Returns a charge (the map's memory was freed, or its creation failed after charging).</summary>
    internal static void Uncharge(long bytes)
    {
        if (bytes != 0) Interlocked.Add(ref s_charged, -bytes);
    }

    static string Describe(ulong bytes) => $"{bytes} bytes";
}
