using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// CGROUP_ARRAY (<see cref="CgroupArrayMap"/>) and bpf_current_task_under_cgroup on every engine: the host thread is under
/// its own cgroup, its ancestors and the root, not under another cgroup; an empty slot is -EAGAIN and an index past
/// max_entries -E2BIG, as the live kernel answers by test run.
/// </summary>
[TestFixture]
public class CgroupArrayMapTests
{
    // array[0] = current_task_under_cgroup(cgroups, r1); the results of indexes 0..3 and 9 go to array values 0..4.
    const string UnderEach = """
        mov %r6, 0
        loop:
        mov %r2, %r6
        jlt %r6, 4, call
        mov %r2, 9
        call:
        ldmap %r1, 1
        call 37
        mov %r7, %r0
        stxw [%r10-4], %r6
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, next
        stxdw [%r0], %r7
        next:
        add %r6, 1
        jlt %r6, 5, loop
        mov %r0, 1
        exit
        """;

    static long[] Results(BpfMap results) =>
        [.. Enumerable.Range(0, 5).Select(i =>
        {
            var v = new byte[8];
            results.Lookup(U32((uint)i), v);
            return BitConverter.ToInt64(v);
        })];

    [Test]
    public void The_host_thread_is_under_its_cgroup_and_its_ancestors([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var results = MapFactory.Create(MapType.Array, 4, 8, 5, 0, "results");
        using var cgroups = (CgroupArrayMap)MapFactory.Create(MapType.CgroupArray, 4, 4, 4, 0, "cgroups");
        // The thread's own cgroup v2 id, as bpf_get_current_cgroup_id gives it (0 where it cannot be known).
        ulong own = KernelHelpers.GetCurrentCgroupId(0, 0, 0, 0, 0);
        Assert.Multiple(() =>
        {
            Assert.That(cgroups.SetCgroup(0, 1), Is.EqualTo(0), "the root cgroup");
            Assert.That(cgroups.SetCgroup(1, 0xFFFF_FFF0UL), Is.EqualTo(0), "a cgroup the thread is not in");
            Assert.That(cgroups.SetCgroup(2, own != 0 ? own : 1), Is.EqualTo(0), "the thread's own cgroup");
            Assert.That(cgroups.SetCgroup(4, 1), Is.EqualTo(-Errno.E2BIG));
        });
        Run(engine, UnderEach, 0, results, cgroups);
        Assert.That(Results(results), Is.EqualTo(new long[] { 1, 0, 1, -Errno.EAGAIN, -Errno.E2BIG }));
    }

    [Test]
    public void Userspace_stores_cgroups_by_id_or_directory()
    {
        using var map = (CgroupArrayMap)MapFactory.Create(MapType.CgroupArray, 4, 4, 2, 0, "cgroups");
        string dir = Path.Combine(Path.GetTempPath(), "bpfjit-cgroup-dir-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            Assert.Multiple(() =>
            {
                Assert.That(map.Update(U32(0), U32(7)), Is.EqualTo(0));
                Assert.That(map.GetCgroup(0), Is.EqualTo(7ul));
                Assert.That(map.Update(U32(0), U32(0)), Is.EqualTo(-Errno.EBADF), "no cgroup has id 0");
                Assert.That(map.Update(U32(0), U32(7), UpdateFlags.NoExist), Is.EqualTo(-Errno.EINVAL));
                Assert.That(map.Update(U32(2), U32(7)), Is.EqualTo(-Errno.E2BIG));
                Assert.That(map.Lookup(U32(0), new byte[4]), Is.EqualTo(-Errno.ENOTSUPP));
                Assert.That(map.SetCgroup(1, dir), Is.EqualTo(0));
                Assert.That(map.GetCgroup(1), Is.Not.Zero, "a directory's inode number");
                Assert.That(map.SetCgroup(1, dir + "/missing"), Is.EqualTo(-Errno.EBADF));
                Assert.That(map.Delete(U32(0)), Is.EqualTo(0));
                Assert.That(map.Delete(U32(0)), Is.EqualTo(-Errno.ENOENT));
            });
        }
        finally { Directory.Delete(dir); }
    }

    [Test, Category(KernelOracle.Category)]
    public void An_empty_slot_and_a_bad_index_get_the_kernels_answers()
    {
        KernelBpf.RequireAvailable();
        int results = KernelBpf.CreateMap((uint)MapType.Array, 4, 8, 5, 0);
        int cgroups = KernelBpf.CreateMap((uint)MapType.CgroupArray, 4, 4, 4, 0);
        Assert.That(results >= 0 && cgroups >= 0, $"BPF_MAP_CREATE {results} {cgroups}");
        try
        {
            var ctx = new byte[72];
            ctx[8] = 2;
            ctx[12] = 6;
            var r = KernelBpf.TestRun(Assemble(UnderEach), [results, cgroups], ctx);
            Assert.That(r.Errno, Is.EqualTo(0), "BPF_PROG_TEST_RUN");
            var kernel = Enumerable.Range(0, 5).Select(i =>
            {
                var v = new byte[8];
                KernelBpf.Lookup(results, U32((uint)i), v);
                return BitConverter.ToInt64(v);
            }).ToArray();
            using var ours = MapFactory.Create(MapType.Array, 4, 8, 5, 0, "results");
            using var ourCgroups = MapFactory.Create(MapType.CgroupArray, 4, 4, 4, 0, "cgroups");
            Run(Engines.Names.First(), UnderEach, 0, ours, ourCgroups);
            if (!KernelOracle.Agrees(kernel.SequenceEqual(new long[] { -Errno.EAGAIN, -Errno.EAGAIN, -Errno.EAGAIN, -Errno.EAGAIN, -Errno.E2BIG }),
                    () => "kernel: " + string.Join(", ", kernel)))
                return;
            Assert.That(Results(ours), Is.EqualTo(kernel));
        }
        finally
        {
            KernelBpf.Close(results);
            KernelBpf.Close(cgroups);
        }
    }
}
