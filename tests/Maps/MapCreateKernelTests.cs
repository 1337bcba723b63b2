using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;
using Errno = BpfJit.Runtime.Errno;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Maps;

/// <summary>
/// BPF_MAP_CREATE on BpfJit and on the live kernel, over every supported map type x every parameter edge
/// (key_size, value_size, max_entries at 0, 1, the kernel's limits, 2^31 - 1, 2^31, 2^32 - 1) x every flag bit (0-31) and
/// numa_node: the same errno (or both accept). Cases whose kernel map would take more than 64 MiB are not sent to the
/// kernel (it would allocate them: an ARRAY of 2^31 x 8 takes 16 GiB there); BpfJit still answers them with a
/// typed error or a success (<see cref="MapFactoryTests"/> holds the kernel's recorded answers for some).
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class MapCreateKernelTests
{
    /// <summary>A case: attributes and, for a map-in-map, its template (an ARRAY 4 x 8 x 1).</summary>
    public sealed record Case(string What, MapType Type, uint Key, uint Value, uint Max, uint Flags, uint Numa = 0, bool Btf = false)
    {
        /// <inheritdoc />
        public override string ToString() => $"{Type} {What} (key {Key}, value {Value}, max {Max}, flags 0x{Flags:x}, numa {Numa}{(Btf ? ", BTF" : "")})";
    }

    static readonly uint[] Edges =
    [
        0, 1, 4, 5, 8, 260, 261, 512, 513, 32768, 32769, 4194024, 4194025, 4194247, 4194248, 4194252, 4194304,
        4096 * 2, 4096 * 3, int.MaxValue, 1u << 31, uint.MaxValue,
    ];

    internal static readonly (MapType Type, uint Key, uint Value, uint Max, uint Flags)[] Bases =
    [
        (MapType.Hash, 4, 8, 16, 0), (MapType.Hash, 4, 8, 16, MapFlags.NoPrealloc), (MapType.Array, 4, 8, 16, 0),
        (MapType.ProgArray, 4, 4, 16, 0), (MapType.PerfEventArray, 4, 4, 16, 0), (MapType.PerCpuHash, 4, 8, 16, 0),
        (MapType.PerCpuHash, 4, 8, 16, MapFlags.NoPrealloc), (MapType.PerCpuArray, 4, 8, 16, 0), (MapType.LruHash, 4, 8, 16, 0),
        (MapType.LruPerCpuHash, 4, 8, 16, 0), (MapType.LpmTrie, 8, 8, 16, MapFlags.NoPrealloc), (MapType.ArrayOfMaps, 4, 4, 16, 0),
        (MapType.HashOfMaps, 4, 4, 16, 0), (MapType.SockMap, 4, 8, 16, 0), (MapType.SockHash, 4, 8, 16, 0), (MapType.RingBuf, 0, 0, 4096, 0),
        (MapType.UserRingBuf, 0, 0, 4096, 0), (MapType.Queue, 0, 8, 16, 0), (MapType.Stack, 0, 8, 16, 0), (MapType.CgroupArray, 4, 4, 16, 0),
        (MapType.ReuseportSockArray, 4, 8, 16, 0), (MapType.ReuseportSockArray, 4, 4, 16, 0),
    ];

    /// <summary>The local-storage maps, created with BTF key and value types (they require them) and without.</summary>
    static readonly (MapType Type, uint Key, uint Value, uint Max, uint Flags, bool Btf)[] StorageBases =
    [
        (MapType.TaskStorage, 4, 8, 0, MapFlags.NoPrealloc, true), (MapType.CgrpStorage, 4, 8, 0, MapFlags.NoPrealloc, true),
        (MapType.TaskStorage, 4, 8, 0, MapFlags.NoPrealloc, false),
    ];

    /// <summary>Every case of the table.</summary>
    public static IEnumerable<Case> Cases()
    {
        foreach (var (t, k, v, m, f) in Bases)
            foreach (var c in CasesOf(t, k, v, m, f, btf: false)) yield return c;
        foreach (var (t, k, v, m, f, btf) in StorageBases)
        {
            foreach (var c in CasesOf(t, k, v, m, f, btf)) yield return c;
            // The value limit, BPF_LOCAL_STORAGE_MAX_VALUE_SIZE, and BPF_F_CLONE.
            foreach (var x in new uint[] { 65407, 65408, 65535 }) yield return new($"value_size {x}", t, k, x, m, f, Btf: btf);
            yield return new("NO_PREALLOC|CLONE", t, k, v, m, f | MapFlags.Clone, Btf: btf);
        }
    }

    static IEnumerable<Case> CasesOf(MapType t, uint k, uint v, uint m, uint f, bool btf)
    {
        string p = (f != 0 ? $"flags 0x{f:x} " : "") + (btf ? "BTF " : "");
        yield return new($"{p}base", t, k, v, m, f, Btf: btf);
        foreach (var x in Edges) yield return new($"{p}key_size {x}", t, x, v, m, f, Btf: btf);
        foreach (var x in Edges) yield return new($"{p}value_size {x}", t, k, x, m, f, Btf: btf);
        foreach (var x in Edges) yield return new($"{p}max_entries {x}", t, k, v, x, f, Btf: btf);
        for (int bit = 0; bit < 32; bit++) yield return new($"{p}flag 0x{1u << bit:x}", t, k, v, m, f | 1u << bit, Btf: btf);
        yield return new($"{p}RDONLY_PROG|WRONLY_PROG", t, k, v, m, f | MapFlags.ReadOnlyProg | MapFlags.WriteOnlyProg, Btf: btf);
        yield return new($"{p}RDONLY|WRONLY", t, k, v, m, f | MapFlags.ReadOnly | MapFlags.WriteOnly, Btf: btf);
        yield return new($"{p}NO_COMMON_LRU|NUMA_NODE", t, k, v, m, f | MapFlags.NoCommonLru | MapFlags.NumaNode, Btf: btf);
        foreach (var numa in new[] { 0u, 1u, 999u, uint.MaxValue })
        {
            yield return new($"{p}NUMA_NODE numa {numa}", t, k, v, m, f | MapFlags.NumaNode, numa, btf);
            yield return new($"{p}numa {numa} without NUMA_NODE", t, k, v, m, f, numa, btf);
        }
    }

    /// <summary>BpfJit's answer: 0 or the negated errno, checked without allocating.</summary>
    internal static int BpfJitAnswer(Case c, out MapCreateException? error)
    {
        error = null;
        try
        {
            MapFactory.Validate(Definition(c));
            return 0;
        }
        catch (MapCreateException e)
        {
            error = e;
            return -e.Errno;
        }
    }

    internal static MapDefinition Definition(Case c) =>
        new(c.Type.ToString().ToLowerInvariant(), c.Type, unchecked((int)c.Key), unchecked((int)c.Value), unchecked((int)c.Max), c.Flags,
            InnerMap: c.Type is MapType.ArrayOfMaps or MapType.HashOfMaps ? new MapDefinition("inner", MapType.Array, 4, 8, 1) : null, NumaNode: c.Numa, Btf: c.Btf);

    /// <summary>
    /// The bytes the kernel would allocate for the case before it can fail, or 0 when one of its checks refuses it
    /// first (the hash bucket-array limit, an ARRAY value above INT_MAX): only cases under 64 MiB go to the kernel.
    /// </summary>
    internal static UInt128 KernelBytes(Case c)
    {
        UInt128 m = c.Max, v = ((UInt128)c.Value + 7) & ~(UInt128)7, k = ((UInt128)c.Key + 7) & ~(UInt128)7;
        const uint cpus = 256;  // more than any host here has: an upper bound of the per-CPU copies
        bool hashLike = c.Type is MapType.Hash or MapType.PerCpuHash or MapType.LruHash or MapType.LruPerCpuHash or MapType.HashOfMaps or MapType.SockHash;
        if (hashLike && c.Max > 1u << 27) return 0;      // E2BIG (EINVAL for SOCKHASH) before the buckets are allocated
        if (c.Type is MapType.Array or MapType.PerCpuArray && c.Value > int.MaxValue) return 0;
        UInt128 buckets = hashLike ? (UInt128)System.Numerics.BitOperations.RoundUpToPowerOf2(Math.Max(c.Max, 1u)) * 16 : 0;
        bool prealloc = (c.Flags & MapFlags.NoPrealloc) == 0;
        return c.Type switch
        {
            MapType.Array => m * v,
            MapType.PerCpuArray => m * 8 + m * v * cpus,
            MapType.Hash or MapType.LruHash or MapType.HashOfMaps => buckets + (prealloc ? m * (48 + k + v) : 0),
            MapType.PerCpuHash or MapType.LruPerCpuHash => buckets + (prealloc ? m * (56 + k + v * cpus) : 0),
            MapType.SockHash => buckets,
            MapType.ProgArray or MapType.PerfEventArray or MapType.CgroupArray or MapType.ArrayOfMaps or MapType.SockMap or MapType.ReuseportSockArray => m * 8,
            MapType.RingBuf or MapType.UserRingBuf => m,
            MapType.Queue or MapType.Stack => (m + 1) * c.Value,
            _ => 0,
        };
    }

    internal const ulong KernelSafeBytes = 64 << 20;

    [OneTimeSetUp]
    public void Setup() => SocketMapBase.Register();

    [Test]
    public void Every_type_edge_and_flag_gets_the_kernels_errno()
    {
        KernelBpf.RequireAvailable();
        int innerFd = KernelBpf.CreateMap((uint)MapType.Array, 4, 8, 1, 0);
        Assert.That(innerFd, Is.GreaterThanOrEqualTo(0), "inner ARRAY for the map-in-map cases");
        var differences = new List<string>();
        int compared = 0;
        try
        {
            foreach (var c in Cases())
            {
                int ours = BpfJitAnswer(c, out var error);
                if (error != null)
                {
                    // The message names the map and says what is wrong.
                    Assert.That(error.Message, Does.StartWith($"map {c.Type.ToString().ToLowerInvariant()} ("), c.ToString());
                }
                if (KernelBytes(c) > KernelSafeBytes) continue;
                int fd;
                if (c.Btf)
                {
                    // BTF for the key (an int, or char[key_size]) and a value struct of value_size bytes; numa_node is 0 there,
                    // which the kernel reads only with BPF_F_NUMA_NODE, and every NUMA_NODE case here is EINVAL before it.
                    if (c.Value > 1u << 24 || c.Key > 1u << 24 || (c.Numa != 0 && (c.Flags & MapFlags.NumaNode) != 0)) continue;  // not a BTF the kernel loads
                    fd = KernelBtf.CreateMapWithSpinLock((uint)c.Type, unchecked((int)c.Key), unchecked((int)c.Value), unchecked((int)c.Max), c.Flags, lockOffset: -1);
                }
                else fd = KernelBpf.CreateMap((uint)c.Type, unchecked((int)c.Key), unchecked((int)c.Value), unchecked((int)c.Max), c.Flags,
                    c.Type is MapType.ArrayOfMaps or MapType.HashOfMaps ? innerFd : 0, c.Numa);
                int kernel = fd >= 0 ? 0 : fd;
                KernelBpf.Close(fd);
                compared++;
                if (kernel != ours) differences.Add($"{c}: kernel {Errno.Name(kernel)}, BpfJit {Errno.Name(ours)} {error?.Reason}");
            }
        }
        finally { KernelBpf.Close(innerFd); }
        TestContext.Out.WriteLine($"{compared} cases compared with the kernel");
        Assert.That(compared, Is.GreaterThan(1000));
        if (differences.Count > 0)
            KernelOracle.Differs(KernelOracle.RecordedRelease, $"{differences.Count} of {compared} cases:\n" + string.Join("\n", differences));
    }

    [Test]
    public void Every_case_is_a_typed_answer_and_accepted_small_maps_are_created()
    {
        int created = 0;
        foreach (var c in Cases())
        {
            int ours = BpfJitAnswer(c, out _);
            if (ours != 0 || MapMemory.Footprint(MapAttributes.Of(Definition(c))) > KernelSafeBytes) continue;
            using var map = MapFactory.Create(Definition(c));
            Assert.That((uint)map.MaxEntries, Is.EqualTo(c.Type == MapType.LpmTrie ? Math.Min(c.Max, int.MaxValue) : c.Max), c.ToString());
            created++;
        }
        Assert.That(created, Is.GreaterThan(100));
    }
}
