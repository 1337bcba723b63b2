using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// bpf_get_current_cgroup_id and bpf_get_current_ancestor_cgroup_id: the cgroup v2 ancestry read from /proc (a table
/// of synthetic /proc and mountinfo texts), and on both engines the same ids the live kernel gives the test's thread.
/// </summary>
[TestFixture]
public class CgroupHelperTests
{
    const string Unified = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    const string Pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    const string Legacy = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";

    static readonly Dictionary<string, ulong> s_inodes = new()
    {
        ["/sys/fs/cgroup"] = 1, ["/sys/fs/cgroup/system.slice"] = 50, ["/sys/fs/cgroup/system.slice/a b.service"] = 77,
        ["/sys/fs/cgroup/unified"] = 1, ["/sys/fs/cgroup/unified/x"] = 9,
        ["/mnt/cg"] = 50, ["/mnt/cg/a b.service"] = 77,
    };

    static ulong? Inode(string path) => s_inodes.TryGetValue(path, out ulong ino) ? ino : null;

    public static readonly (string Name, string Cgroup, string MountInfo, ulong[] Chain)[] Cases =
    [
        ("root, pure v2", "0::/\n", Pure, [1]),
        ("nested, pure v2", "0::/system.slice/a b.service\n", Pure, [1, 50, 77]),
        ("hybrid", "4:memory:/m\n0::/x\n", Legacy + Unified, [1, 9]),
        ("mount root below the hierarchy root", "0::/system.slice/a b.service\n", "1 0 0:26 /system.slice /mnt/cg rw - cgroup2 cgroup2 rw\n", [0, 50, 77]),
        ("no v2 mount, root", "0::/\n", Legacy, [1]),
        ("no v2 mount, nested", "0::/x\n", Legacy, []),
        ("no 0:: line", "4:memory:/m\n", Pure, []),
        ("directory missing", "0::/gone\n", Pure, []),
    ];

    static IEnumerable<TestCaseData> ReadCases() => Cases.Select(c => new TestCaseData(c.Name).SetName($"ChainIsRead({c.Name})"));

    [TestCaseSource(nameof(ReadCases))]
    public void ChainIsRead(string name)
    {
        var c = Array.Find(Cases, x => x.Name == name);
        Assert.That(KernelHelpers.CurrentCgroup.Read(c.Cgroup, c.MountInfo, Inode), Is.EqualTo(c.Chain));
    }

    [Test]
    public void MountinfoEscapesAreDecoded()
    {
        var chain = KernelHelpers.CurrentCgroup.Read("0::/\n", @"1 0 0:26 / /sys/fs/cgroup\040x rw - cgroup2 cgroup2 rw" + "\n",
            p => p == "/sys/fs/cgroup x" ? 1 : null);
        Assert.That(chain, Is.EqualTo(new ulong[] { 1 }));
    }

    /// <summary>Value layout: [0, 8) the cgroup id, then the ancestor at levels -1, 0, 1, 2, 3 and 1000.</summary>
    static readonly int[] s_levels = [-1, 0, 1, 2, 3, 1000];

    static string Program()
    {
        var sb = new System.Text.StringBuilder($"""
            stw [%r10-4], 0
            ldmap %r1, 0
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, out
            mov %r6, %r0
            call {KernelHelpers.GetCurrentCgroupIdId}
            stxdw [%r6+0], %r0

            """);
        for (int i = 0; i < s_levels.Length; i++)
            sb.Append($"mov %r1, {s_levels[i]}\ncall {KernelHelpers.GetCurrentAncestorCgroupIdId}\nstxdw [%r6+{8 + 8 * i}], %r0\n");
        sb.Append("out:\nmov %r0, 0\nexit\n");
        return sb.ToString();
    }

    const int ValueSize = 56;

    static ulong[] Expected()
    {
        var chain = KernelHelpers.CurrentCgroup.Chain();
        return [chain.Length == 0 ? 0 : chain[^1], .. s_levels.Select(l => l >= 0 && l < chain.Length ? chain[l] : 0UL)];
    }

    static ulong[] Words(byte[] value) => Enumerable.Range(0, ValueSize / 8).Select(i => BitConverter.ToUInt64(value, 8 * i)).ToArray();

    [Test]
    public void BothEnginesGiveTheThreadsChain()
    {
        foreach (var engine in Engines.Names)
        {
            using var map = MapFactory.Create(MapType.Array, 4, ValueSize, 1, 0, "v");
            Run(engine, Program(), 0, map);
            var value = new byte[ValueSize];
            Assert.That(map.Lookup(U32(0), value), Is.EqualTo(0));
            Assert.That(Words(value), Is.EqualTo(Expected()), engine);
        }
    }

    [Test]
    public void OnLinuxTheChainIsKnown()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("cgroups are Linux's");
        Assert.That(KernelHelpers.CurrentCgroup.Chain(), Is.Not.Empty, "this Linux host has a cgroup v2 mount reaching the test's cgroup");
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelGivesTheSameIds()
    {
        KernelBpf.RequireAvailable();
        int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, ValueSize, 1, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0));
        try
        {
            var ctx = new byte[72];
            ctx[8] = 2;
            ctx[12] = 6;
            var r = KernelBpf.TestRun(Assemble(Program()), [fd], ctx);
            Assert.That(r.Errno, Is.EqualTo(0), "BPF_PROG_TEST_RUN");
            var value = new byte[ValueSize];
            Assert.That(KernelBpf.Lookup(fd, U32(0), value), Is.EqualTo(0));
            KernelOracle.Agrees(Words(value).SequenceEqual(Expected()),
                () => $"kernel [{string.Join(", ", Words(value))}], BpfJit [{string.Join(", ", Expected())}]");
        }
        finally
        {
            KernelBpf.Close(fd);
        }
    }
}
