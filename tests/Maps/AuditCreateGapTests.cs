using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Audit (helper aud): the cases <see cref="MapCreateKernelTests"/> does not send to the kernel: REUSEPORT_SOCKARRAY
/// (a supported type missing from its table), STACK and QUEUE with BPF_F_* bits above 13, and flag bits 14-31 on
/// every type of the table. Same comparison: BpfJit's errno against the live kernel's.
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class AuditCreateGapTests
{
    [OneTimeSetUp]
    public void Setup() => SocketMapBase.Register();

    static IEnumerable<MapCreateKernelTests.Case> Cases()
    {
        uint[] edges = [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 260, 4096, 4194304, int.MaxValue, 1u << 31, uint.MaxValue];
        var t = MapType.ReuseportSockArray;
        yield return new("base", t, 4, 8, 16, 0);
        foreach (var x in edges) yield return new($"key_size {x}", t, x, 8, 16, 0);
        foreach (var x in edges) yield return new($"value_size {x}", t, 4, x, 16, 0);
        foreach (var x in edges) yield return new($"max_entries {x}", t, 4, 8, x, 0);
        for (int bit = 0; bit < 32; bit++) yield return new($"flag 0x{1u << bit:x}", t, 4, 8, 16, 1u << bit);
        foreach (var numa in new[] { 0u, 1u, uint.MaxValue }) yield return new($"NUMA_NODE numa {numa}", t, 4, 8, 16, MapFlags.NumaNode, numa);
        // Flag bits 14..31 on every base type of the table.
        foreach (var (bt, k, v, m, f) in MapCreateKernelTests.Bases)
            for (int bit = 14; bit < 32; bit++) yield return new($"flags 0x{f:x} | bit {bit}", bt, k, v, m, f | 1u << bit);
    }

    [Test]
    public void Kernel_and_BpfJit_agree()
    {
        KernelBpf.RequireAvailable();
        int innerFd = KernelBpf.CreateMap((uint)MapType.Array, 4, 8, 1, 0);
        var differences = new List<string>();
        int compared = 0;
        try
        {
            foreach (var c in Cases())
            {
                int ours = MapCreateKernelTests.BpfJitAnswer(c, out var error);
                if (MapCreateKernelTests.KernelBytes(c) > MapCreateKernelTests.KernelSafeBytes) continue;
                if (c.Type == MapType.ReuseportSockArray && (ulong)c.Max * 8 > MapCreateKernelTests.KernelSafeBytes) { TestContext.Out.WriteLine($"skipped (size) {c}: BpfJit {Errno.Name(ours)}"); continue; }
                int fd = KernelBpf.CreateMap((uint)c.Type, unchecked((int)c.Key), unchecked((int)c.Value), unchecked((int)c.Max), c.Flags,
                    c.Type is MapType.ArrayOfMaps or MapType.HashOfMaps ? innerFd : 0, c.Numa);
                int kernel = fd >= 0 ? 0 : fd;
                KernelBpf.Close(fd);
                compared++;
                if (kernel != ours) differences.Add($"{c}: kernel {Errno.Name(kernel)}, BpfJit {Errno.Name(ours)} {error?.Reason}");
            }
        }
        finally { KernelBpf.Close(innerFd); }
        TestContext.Out.WriteLine($"{compared} compared, {differences.Count} differ:\n" + string.Join("\n", differences));
        Assert.That(differences, Is.Empty);
    }
}
