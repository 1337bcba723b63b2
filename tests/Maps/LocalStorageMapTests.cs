using System.Runtime.InteropServices;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// TASK_STORAGE and CGRP_STORAGE (<see cref="LocalStorageMap"/>): bpf_task_storage_get/delete on every engine (a value per
/// host thread, made with BPF_LOCAL_STORAGE_GET_F_CREATE from the initial value), the cgroup helpers' NULL answers, and
/// the userspace operations compared with the live kernel's (a pidfd or cgroup fd there, a thread or cgroup id here).
/// </summary>
[TestFixture, NonParallelizable]   // MapMemory.Charged is process-wide
public class LocalStorageMapTests
{
    static MapDefinition Storage(MapType type, int valueSize = 8) => new("st", type, 4, valueSize, 0, MapFlags.NoPrealloc, Btf: true);

    static uint ThreadId() => (uint)KernelHelpers.GetCurrentPidTgid(0, 0, 0, 0, 0);

    // r1 = flags; the current task's value, made from {5} with F_CREATE, is incremented and returned; -1 for NULL.
    const string GetAndCount = """
        stdw [%r10-8], 5
        mov %r7, %r1
        call 158
        mov %r2, %r0
        ldmap %r1, 0
        mov %r3, %r10
        add %r3, -8
        mov %r4, %r7
        call 156
        jeq %r0, 0, null
        ldxdw %r1, [%r0]
        add %r1, 1
        stxdw [%r0], %r1
        mov %r0, %r1
        exit
        null:
        mov %r0, -1
        exit
        """;

    const string DeleteCurrent = """
        call 158
        mov %r2, %r0
        ldmap %r1, 0
        call 157
        exit
        """;

    [Test]
    public void Each_host_thread_has_its_own_value_made_on_demand([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(Storage(MapType.TaskStorage));
        var count = Prepare(engine, GetAndCount, map);
        var delete = Prepare(engine, DeleteCurrent, map);
        Assert.Multiple(() =>
        {
            Assert.That((long)Run(count, 0), Is.EqualTo(-1), "no value without F_CREATE");
            Assert.That((long)Run(count, 2), Is.EqualTo(-1), "an unknown flag is NULL");
            Assert.That((long)Run(count, 3), Is.EqualTo(-1), "an unknown flag is NULL, with F_CREATE too");
            Assert.That(Run(count, LocalStorageMap.GetFCreate), Is.EqualTo(6ul), "made from the initial value");
            Assert.That(Run(count, 0), Is.EqualTo(7ul), "found without F_CREATE");
        });

        // Another thread gets a value of its own.
        uint otherTid = 0;
        ulong other = 0;
        var thread = new Thread(() =>
        {
            otherTid = ThreadId();
            other = Run(count, LocalStorageMap.GetFCreate);
            Run(count, LocalStorageMap.GetFCreate);
        });
        thread.Start();
        thread.Join();
        var value = new byte[8];
        Assert.Multiple(() =>
        {
            Assert.That(other, Is.EqualTo(6ul));
            Assert.That(((LocalStorageMap)map).Count, Is.EqualTo(2));
            Assert.That(map.Lookup(U32(ThreadId()), value), Is.EqualTo(0));
            Assert.That(BitConverter.ToUInt64(value), Is.EqualTo(7ul), "userspace reads this thread's value by its thread id");
            Assert.That((long)Run(delete), Is.EqualTo(0));
            Assert.That((long)Run(delete), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Lookup(U32(ThreadId()), value), Is.EqualTo(-Errno.ENOENT));
            Assert.That(Run(count, LocalStorageMap.GetFCreate), Is.EqualTo(6ul), "made anew after the delete");
        });
    }

    /// <summary>Checked mode knows a storage value as a region a program may touch, and faults just past it.</summary>
    [Test]
    public void Checked_mode_attributes_accesses_to_the_value()
    {
        using var map = MapFactory.Create(Storage(MapType.TaskStorage));
        var engine = new BpfJit.IlEmitter.JitEngine(new BpfJit.IlEmitter.JitOptions { Checked = true });
        var count = engine.Prepare(ProgramBinder.Bind(Assemble(GetAndCount), [map]).Code, KernelHelpers.Table());
        Assert.That(Run(count, LocalStorageMap.GetFCreate), Is.EqualTo(6ul));
        var past = engine.Prepare(ProgramBinder.Bind(Assemble(GetAndCount.Replace("stxdw [%r0], %r1", "stxdw [%r0+8], %r1", StringComparison.Ordinal)), [map]).Code,
            KernelHelpers.Table());
        var e = Assert.Throws<BpfJit.Runtime.Checked.BpfCheckedModeException>(() => Run(past, 0));
        Assert.That(e!.Access, Is.EqualTo("store"));
    }

    [Test]
    public void A_NULL_owner_gets_NULL_and_EINVAL([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var tasks = MapFactory.Create(Storage(MapType.TaskStorage));
        using var cgroups = MapFactory.Create(Storage(MapType.CgrpStorage));
        // get(map, NULL, NULL, F_CREATE) << 32 | delete(map, NULL) & 0xffffffff, for helper pair (get, delete).
        string Source(int get, int delete) => $"""
            ldmap %r1, 0
            mov %r2, 0
            mov %r3, 0
            mov %r4, 1
            call {get}
            mov %r6, %r0
            lsh %r6, 32
            ldmap %r1, 0
            mov %r2, 0
            call {delete}
            lsh %r0, 32
            rsh %r0, 32
            or %r0, %r6
            exit
            """;
        ulong expected = unchecked((uint)-Errno.EINVAL);
        Assert.Multiple(() =>
        {
            Assert.That(Run(engine, Source(156, 157), 0, tasks), Is.EqualTo(expected));
            Assert.That(Run(engine, Source(210, 211), 0, cgroups), Is.EqualTo(expected));
            Assert.That(((LocalStorageMap)cgroups).Count, Is.Zero);
        });
    }

    [Test]
    public void Elements_are_charged_and_returned()
    {
        using var map = MapFactory.Create(Storage(MapType.TaskStorage, 100));
        long before = MapMemory.Charged;
        Assert.That(map.Update(U32(ThreadId()), new byte[100]), Is.EqualTo(0));
        Assert.That(MapMemory.Charged - before, Is.EqualTo(LocalStorageMap.ElementHeader + 104));
        Assert.That(map.Update(U32(ThreadId()), new byte[100]), Is.EqualTo(0), "a replacement");
        Assert.That(MapMemory.Charged - before, Is.EqualTo(LocalStorageMap.ElementHeader + 104));
        Assert.That(map.Delete(U32(ThreadId())), Is.EqualTo(0));
        Assert.That(MapMemory.Charged, Is.EqualTo(before));
    }

    [DllImport("libc", SetLastError = true)]
    static extern long syscall(long number, long a, long b);

    [DllImport("libc", SetLastError = true)]
    static extern int open(string path, int flags);

    [DllImport("libc")]
    static extern int close(int fd);

    enum Op { Lookup, Update, Delete, NextKey, LookupAndDelete }

    static readonly (Op Op, bool BadKey, ulong Flags)[] Steps =
    [
        (Op.Lookup, false, 0), (Op.Delete, false, 0), (Op.Update, false, UpdateFlags.Exist), (Op.Update, false, 3),
        (Op.Update, false, UpdateFlags.Lock), (Op.Update, false, UpdateFlags.NoExist), (Op.Update, false, UpdateFlags.NoExist),
        (Op.Update, false, UpdateFlags.Any), (Op.Update, false, UpdateFlags.Exist), (Op.Lookup, false, 0), (Op.Lookup, false, UpdateFlags.Lock),
        (Op.Lookup, false, 1), (Op.NextKey, false, 0), (Op.LookupAndDelete, false, 0), (Op.Delete, false, 0), (Op.Delete, false, 0),
        (Op.Lookup, true, 0), (Op.Update, true, 0), (Op.Delete, true, 0), (Op.NextKey, true, 0),
    ];

    /// <summary>
    /// The userspace operations step by step on a BpfJit map and a kernel map: the kernel's key is a pidfd of this process
    /// (TASK_STORAGE) or an fd of the first cgroup2 mount's root (CGRP_STORAGE; ignored without one), BpfJit's the
    /// process's main thread id or a cgroup id; a bad key is -1 for both. Every step gives the same errno.
    /// </summary>
    [TestCase(MapType.TaskStorage)]
    [TestCase(MapType.CgrpStorage)]
    [Category(KernelOracle.Category)]
    public void Userspace_operations_get_the_kernels_errno(MapType type)
    {
        KernelBpf.RequireAvailable();
        const long pidfdOpen = 434;
        string? cgroup2 = File.ReadAllLines("/proc/self/mountinfo").Where(l => l.Contains(" - cgroup2 ", StringComparison.Ordinal))
            .Select(l => l.Split(' ')[4]).FirstOrDefault();
        int ownerFd = type == MapType.TaskStorage ? (int)syscall(pidfdOpen, Environment.ProcessId, 0) : cgroup2 != null ? open(cgroup2, 0) : -1;
        if (ownerFd < 0) Assert.Ignore($"no {(type == MapType.TaskStorage ? "pidfd" : "cgroup2 mount")} here");
        int fd = KernelBtf.CreateMapWithSpinLock((uint)type, 4, 8, 0, MapFlags.NoPrealloc, lockOffset: -1);
        try
        {
            Assert.That(fd, Is.GreaterThanOrEqualTo(0), Errno.Name(-fd));
            using var map = MapFactory.Create(Storage(type));
            uint owner = type == MapType.TaskStorage ? (uint)Environment.ProcessId : 1;
            var differences = new List<string>();
            foreach (var (op, bad, flags) in Steps)
            {
                var kernelKey = U32(bad ? uint.MaxValue : (uint)ownerFd);
                var ourKey = U32(bad ? uint.MaxValue : owner);
                var value = U64(0x1122334455667788);
                int kernel = op switch
                {
                    Op.Lookup => KernelBpf.Lookup(fd, kernelKey, value, flags),
                    Op.Update => KernelBpf.Update(fd, kernelKey, value, flags),
                    Op.Delete => KernelBpf.Delete(fd, kernelKey),
                    Op.NextKey => KernelBpf.GetNextKey(fd, kernelKey, new byte[4]),
                    _ => KernelBpf.LookupAndDelete(fd, kernelKey, value, flags),
                };
                int ours = op switch
                {
                    Op.Lookup => map.Lookup(ourKey, value, flags),
                    Op.Update => map.Update(ourKey, value, flags),
                    Op.Delete => map.Delete(ourKey),
                    Op.NextKey => map.GetNextKey(ourKey, new byte[4]),
                    _ => map.LookupAndDelete(ourKey, value, flags),
                };
                if (kernel != ours) differences.Add($"{op}{(bad ? " bad key" : "")} flags 0x{flags:x}: kernel {Errno.Name(kernel)}, BpfJit {Errno.Name(ours)}");
            }
            if (differences.Count > 0)
                KernelOracle.Differs(KernelOracle.RecordedRelease, $"{type}: {differences.Count} of {Steps.Length} steps:\n" + string.Join("\n", differences));
        }
        finally
        {
            KernelBpf.Close(fd);
            close(ownerFd);
        }
    }

    [Test]
    public void A_thread_id_that_is_no_thread_of_the_host_is_ENOENT()
    {
        using var map = MapFactory.Create(Storage(MapType.TaskStorage));
        // Thread ids are below pid_max (at most 2^22); this one is no thread of this process.
        var key = U32((1u << 30) + 7);
        Assert.Multiple(() =>
        {
            Assert.That(map.Update(key, new byte[8]), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Lookup(key, new byte[8]), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Delete(key), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.Delete(U32(0)), Is.EqualTo(-Errno.EBADF));
        });
    }

    /// <summary>Runs <paramref name="entry"/> with F_CREATE on a thread of its own, which then ends; returns that thread's id.</summary>
    static uint RunOnEndedThread(BpfEntry entry)
    {
        uint tid = 0;
        var thread = new Thread(() =>
        {
            tid = ThreadId();
            Assert.That((long)Run(entry, LocalStorageMap.GetFCreate), Is.EqualTo(6));
        });
        thread.Start();
        thread.Join();
        // Join returns when the managed thread is done; the OS thread leaves /proc/self/task a moment later.
        for (int i = 0; i < 500 && OperatingSystem.IsLinux() && Directory.Exists($"/proc/self/task/{tid}"); i++) Thread.Sleep(10);
        return tid;
    }

    /// <summary>
    /// As the kernel frees a task's storage at its exit, a thread's value goes when the thread ends (the next collection
    /// runs the finaliser that frees it) and its charge is returned; the thread id is then -ENOENT.
    /// </summary>
    [Test]
    public void A_threads_value_is_freed_when_the_thread_ends([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = (LocalStorageMap)MapFactory.Create(Storage(MapType.TaskStorage));
        var count = Prepare(engine, GetAndCount, map);
        long charged = MapMemory.Charged;
        uint tid = RunOnEndedThread(count);
        for (int i = 0; i < 20 && map.Count > 0; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.Multiple(() =>
        {
            Assert.That(map.Count, Is.Zero, "the ended thread's value is freed");
            Assert.That(MapMemory.Charged, Is.LessThan(charged + LocalStorageMap.ElementHeader), "and its charge returned");
            Assert.That(map.Lookup(U32(tid), new byte[8]), Is.EqualTo(-Errno.ENOENT));
        });
        // This thread's own value is untouched by another thread's end.
        Assert.That((long)Run(count, LocalStorageMap.GetFCreate), Is.EqualTo(6));
        RunOnEndedThread(count);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.That(map.Lookup(U32(ThreadId()), new byte[8]), Is.Zero);
    }

    /// <summary>Before any collection, a userspace operation on an ended thread's id frees its value and gets -ENOENT.</summary>
    [Test]
    public void A_lookup_of_an_ended_thread_frees_its_value()
    {
        using var map = (LocalStorageMap)MapFactory.Create(Storage(MapType.TaskStorage));
        uint tid = RunOnEndedThread(Prepare("interpreter", GetAndCount, map));
        Assert.That(map.Lookup(U32(tid), new byte[8]), Is.EqualTo(-Errno.ENOENT));
        Assert.That(map.Count, Is.Zero);
    }
}
