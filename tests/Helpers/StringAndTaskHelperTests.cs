using System.Text;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// bpf_strtol and bpf_strtoul, the probe_read helpers and the current-task helpers on both engines, each against a
/// table recorded from Linux 6.18 (BPF_PROG_TEST_RUN of the same programs) and, where the kernel is at hand, against
/// the live kernel. Every program leaves its results in an ARRAY map's value, which the test reads.
/// </summary>
[TestFixture]
public class StringAndTaskHelperTests
{
    /// <summary>One parse: the input's bytes (Latin-1), the size passed, the flags, and each helper's *res and result.</summary>
    public sealed record Parse(string Input, int Length, int Flags, long Strtol, int StrtolRet, long Strtoul, int StrtoulRet)
    {
        /// <inheritdoc />
        public override string ToString() => $"\"{Input.Replace("\0", "\\0", StringComparison.Ordinal)}\"/{Length} flags {Flags}";
    }

    /// <summary>Recorded from Linux 6.18.44 (tools: a test-run of <see cref="ParseProgram"/> per row).</summary>
    public static readonly Parse[] Parses =
    [
        new("42", 2, 0, 42L, 2, 42L, 2),
        new("  -17", 5, 0, -17L, 5, 0L, -22),
        new("0x1f", 4, 0, 31L, 4, 31L, 4),
        new("0X1F", 4, 0, 31L, 4, 31L, 4),
        new("0x", 2, 0, 0L, 1, 0L, 1),
        new("0x", 2, 16, 0L, -22, 0L, -22),
        new("077", 3, 0, 63L, 3, 63L, 3),
        new("089", 3, 0, 0L, 1, 0L, 1),
        new("089", 3, 10, 89L, 3, 89L, 3),
        new("9223372036854775807", 19, 0, 9223372036854775807L, 19, 9223372036854775807L, 19),
        new("9223372036854775808", 19, 0, 0L, -34, long.MinValue, 19),
        new("-9223372036854775808", 20, 0, long.MinValue, 20, 0L, -22),
        new("-9223372036854775809", 20, 0, 0L, -34, 0L, -22),
        new("18446744073709551615", 20, 0, 0L, -34, -1L, 20),
        new("18446744073709551616", 20, 0, 0L, -34, 0L, -34),
        new("-1", 2, 0, -1L, 2, 0L, -22),
        new("\0", 1, 0, 0L, -22, 0L, -22),
        new(" ", 1, 0, 0L, -22, 0L, -22),
        new("\u00a012", 3, 0, 12L, 3, 12L, 3),
        new("\t\n\v\f\r 7", 7, 0, 7L, 7, 7L, 7),
        new("12abc", 5, 10, 12L, 2, 12L, 2),
        new("ff", 2, 16, 255L, 2, 255L, 2),
        new("0xff", 4, 16, 255L, 4, 255L, 4),
        new("z", 1, 0, 0L, -22, 0L, -22),
        new("12", 2, 2, 0L, -22, 0L, -22),
        new("12", 2, 32, 0L, -22, 0L, -22),
        new("+5", 2, 0, 0L, -22, 0L, -22),
        new("12345", 3, 0, 123L, 3, 123L, 3),
        new("-", 1, 0, 0L, -22, 0L, -22),
        new("- 1", 3, 0, 0L, -22, 0L, -22),
        new("0000000000000000000000000000000000000000000000000000000000000012", 64, 0, 1L, 63, 1L, 63),
        new("0000000000000000000000000000000000000000000000000000000000000009", 64, 0, 0L, 63, 0L, 63),
        new("fffffffffffffffff", 17, 16, 0L, -34, 0L, -34),
        new("0x1g", 4, 0, 1L, 3, 1L, 3),
        new("7", 1, 8, 7L, 1, 7L, 1),
        new("8", 1, 8, 0L, -22, 0L, -22),
        new("1\02", 3, 0, 1L, 1, 1L, 1),
        new("--1", 3, 0, 0L, -22, 0L, -22),
    ];

    /// <summary>Value layout: [0, 64) the string, [64, 72) *res, [72, 80) the helper's result.</summary>
    const int ParseValueSize = 80;

    static string ParseProgram(int helper, int length, int flags) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        mov %r1, %r6
        mov %r2, {length}
        mov %r3, {flags}
        mov %r4, %r6
        add %r4, 64
        call {helper}
        stxdw [%r6+72], %r0
        out:
        mov %r0, 0
        exit
        """;

    static byte[] ParseInput(Parse p)
    {
        var value = new byte[ParseValueSize];
        Encoding.Latin1.GetBytes(p.Input).CopyTo(value, 0);
        Array.Fill(value, (byte)0x5a, 64, 8);
        return value;
    }

    static (long Res, long Ret) Results(byte[] value, int at = 64) => (BitConverter.ToInt64(value, at), BitConverter.ToInt64(value, at + 8));

    [TestCaseSource(nameof(Parses))]
    public void StrtolAndStrtoulParseAsTheKernel(Parse p)
    {
        foreach (var engine in Engines.Names)
        {
            foreach (var (helper, res, ret) in new[] { (KernelHelpers.StrtolId, p.Strtol, p.StrtolRet), (KernelHelpers.StrtoulId, p.Strtoul, p.StrtoulRet) })
            {
                using var map = MapFactory.Create(MapType.Array, 4, ParseValueSize, 1, 0, "s");
                Assert.That(map.Update(U32(0), ParseInput(p)), Is.EqualTo(0));
                Run(engine, ParseProgram(helper, p.Length, p.Flags), 0, map);
                var value = new byte[ParseValueSize];
                Assert.That(map.Lookup(U32(0), value), Is.EqualTo(0));
                Assert.That(Results(value), Is.EqualTo((res, (long)ret)), $"{engine}: helper {helper}");
            }
        }
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelParsesAsRecorded()
    {
        KernelBpf.RequireAvailable();
        var differences = new List<string>();
        foreach (var p in Parses)
        {
            foreach (var (helper, res, ret) in new[] { (KernelHelpers.StrtolId, p.Strtol, p.StrtolRet), (KernelHelpers.StrtoulId, p.Strtoul, p.StrtoulRet) })
            {
                var value = KernelRun(ParseProgram(helper, p.Length, p.Flags), ParseValueSize, ParseInput(p));
                if (Results(value) != (res, (long)ret)) differences.Add($"{p} helper {helper}: kernel {Results(value)}, recorded {(res, ret)}");
            }
        }
        if (differences.Count > 0) KernelOracle.Differs("6.18.44-fc-v1300", string.Join("\n", differences));
    }

    /// <summary>Runs <paramref name="source"/> (one ARRAY map of one <paramref name="valueSize"/>-byte value) in the kernel; returns the value after the run.</summary>
    static byte[] KernelRun(string source, int valueSize, byte[] initial)
    {
        int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, valueSize, 1, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"BPF_MAP_CREATE: errno {-fd}");
        try
        {
            Assert.That(KernelBpf.Update(fd, U32(0), initial), Is.EqualTo(0));
            var ctx = new byte[72];
            ctx[8] = 2;     // AF_INET
            ctx[12] = 6;    // TCP
            var r = KernelBpf.TestRun(Assemble(source), [fd], ctx);
            Assert.That(r.Errno, Is.EqualTo(0), "BPF_PROG_TEST_RUN");
            var value = new byte[valueSize];
            Assert.That(KernelBpf.Lookup(fd, U32(0), value), Is.EqualTo(0));
            return value;
        }
        finally
        {
            KernelBpf.Close(fd);
        }
    }

    /// <summary>Runs <paramref name="source"/> with one such map on <paramref name="engine"/>; returns the value after the run.</summary>
    static byte[] EngineRun(string engine, string source, int valueSize, byte[] initial)
    {
        using var map = MapFactory.Create(MapType.Array, 4, valueSize, 1, 0, "v");
        Assert.That(map.Update(U32(0), initial), Is.EqualTo(0));
        Run(engine, source, 0, map);
        var value = new byte[valueSize];
        Assert.That(map.Lookup(U32(0), value), Is.EqualTo(0));
        return value;
    }

    /// <summary>Value layout: [0, 8) the buffer (0x5a before the call), [8, 16) the helper's result.</summary>
    static string ProbeProgram(int helper, int size, ulong address) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        mov %r1, %r6
        mov %r2, {size}
        lddw %r3, {address}
        call {helper}
        stxdw [%r6+8], %r0
        out:
        mov %r0, 0
        exit
        """;

    /// <summary>
    /// Recorded from Linux 6.18.44 at addresses no process or kernel maps (NULL, the first page, the first address
    /// past user space, the start of the kernel half): (helper, size, address, result). A failed read zeroes the buffer.
    /// </summary>
    public static readonly (int Helper, int Size, ulong Address, long Ret)[] Probes =
    [
        (112, 0, 0, 0), (112, 0, 0x1000, 0), (112, 0, 0x800000000000, -14), (112, 0, 0xffff800000000000, -14),
        (112, 8, 0, -14), (112, 8, 0x1000, -14), (112, 8, 0x800000000000, -14), (112, 8, 0xffff800000000000, -14),
        (113, 0, 0, -34), (113, 0, 0x1000, -34), (113, 0, 0x800000000000, 0), (113, 0, 0xffff800000000000, 0),
        (113, 8, 0, -34), (113, 8, 0x1000, -34), (113, 8, 0x800000000000, -14), (113, 8, 0xffff800000000000, -14),
        (114, 0, 0, 0), (114, 0, 0x1000, 0), (114, 0, 0x800000000000, 0), (114, 0, 0xffff800000000000, 0),
        (114, 8, 0, -14), (114, 8, 0x1000, -14), (114, 8, 0x800000000000, -14), (114, 8, 0xffff800000000000, -14),
        (115, 0, 0, 0), (115, 0, 0x1000, 0), (115, 0, 0x800000000000, 0), (115, 0, 0xffff800000000000, 0),
        (115, 8, 0, -34), (115, 8, 0x1000, -34), (115, 8, 0x800000000000, -14), (115, 8, 0xffff800000000000, -14),
    ];

    static byte[] ProbeInitial()
    {
        var v = new byte[16];
        Array.Fill(v, (byte)0x5a, 0, 8);
        return v;
    }

    static ulong ExpectedBuffer(int size, long ret) => size > 0 && ret < 0 ? 0 : 0x5a5a5a5a5a5a5a5aUL;

    [Test]
    public void ProbeReadsFailAsTheKernelWithTheBufferZeroed([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        Assert.Multiple(() =>
        {
            foreach (var (helper, size, address, ret) in Probes)
            {
                var value = EngineRun(engine, ProbeProgram(helper, size, address), 16, ProbeInitial());
                Assert.That((BitConverter.ToInt64(value, 8), BitConverter.ToUInt64(value, 0)), Is.EqualTo((ret, ExpectedBuffer(size, ret))),
                    $"helper {helper} size {size} at 0x{address:x}");
            }
        });
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelProbesAsRecorded()
    {
        KernelBpf.RequireAvailable();
        var differences = new List<string>();
        foreach (var (helper, size, address, ret) in Probes)
        {
            var value = KernelRun(ProbeProgram(helper, size, address), 16, ProbeInitial());
            var got = (BitConverter.ToInt64(value, 8), BitConverter.ToUInt64(value, 0));
            if (got != (ret, ExpectedBuffer(size, ret))) differences.Add($"helper {helper} size {size} at 0x{address:x}: kernel {got}, recorded {ret}");
        }
        if (differences.Count > 0) KernelOracle.Differs("6.18.44-fc-v1300", string.Join("\n", differences));
    }

    /// <summary>Value layout: [0, 8) pid_tgid, [8, 16) uid_gid, [16, 32) the comm buffer (0x5a before), of which the first <c>size</c> bytes are passed.</summary>
    static string TaskProgram(int commSize) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        call 14
        stxdw [%r6+0], %r0
        call 15
        stxdw [%r6+8], %r0
        mov %r1, %r6
        add %r1, 16
        mov %r2, {commSize}
        call 16
        out:
        mov %r0, 0
        exit
        """;

    static byte[] TaskInitial()
    {
        var v = new byte[32];
        Array.Fill(v, (byte)0x5a, 16, 16);
        return v;
    }

    /// <summary>The calling thread's id, its name, and the process's real uid and gid, from /proc.</summary>
    static (ulong PidTgid, ulong UidGid, string Comm) Current()
    {
        string link = new DirectoryInfo("/proc/thread-self").LinkTarget!;    // "PID/task/TID"
        uint tid = uint.Parse(link[(link.LastIndexOf('/') + 1)..]);
        var status = File.ReadAllLines("/proc/self/status");
        uint Field(string name) => uint.Parse(status.First(l => l.StartsWith(name, StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);
        string comm = File.ReadAllText("/proc/thread-self/comm").TrimEnd('\n');
        return ((ulong)(uint)Environment.ProcessId << 32 | tid, (ulong)Field("Gid:") << 32 | Field("Uid:"), comm);
    }

    /// <summary>strscpy_pad: at most size - 1 bytes of the name, NULs to size, the bytes past size untouched.</summary>
    static byte[] ExpectedComm(string comm, int size)
    {
        var v = new byte[16];
        Array.Fill(v, (byte)0x5a);
        Array.Clear(v, 0, size);
        var name = Encoding.UTF8.GetBytes(comm);
        Array.Copy(name, v, Math.Min(name.Length, size - 1));
        return v;
    }

    [Test]
    public void CurrentTaskHelpersGiveTheHostThread([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine, [Values(16, 4, 1)] int commSize)
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("the current task's ids are read from /proc here");
        var value = EngineRun(engine, TaskProgram(commSize), 32, TaskInitial());
        var (pidTgid, uidGid, comm) = Current();
        Assert.Multiple(() =>
        {
            Assert.That(BitConverter.ToUInt64(value, 0), Is.EqualTo(pidTgid), "pid_tgid: process id << 32 | thread id");
            Assert.That(BitConverter.ToUInt64(value, 8), Is.EqualTo(uidGid), "uid_gid: gid << 32 | uid");
            Assert.That(value[16..32], Is.EqualTo(ExpectedComm(comm, commSize)), $"comm '{comm}' in {commSize} bytes");
            Assert.That(Run(engine, "call 35\nexit", 0), Is.EqualTo(0ul), "get_current_task: no kernel task");
        });
    }

    [Test]
    public void KernelBtfPointersAreHandlesOrTheContext([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        // bpf_get_current_task_btf: never NULL, tagged, the thread's own.
        ulong task = Run(engine, "call 158\nexit", 0);
        Assert.That(task >> 48, Is.EqualTo(KernelHelpers.CurrentTaskTag >> 48));
        Assert.That(task, Is.EqualTo(Run(engine, "call 158\nexit", 0)), "the same thread, the same task");
        // bpf_cast_to_kern_ctx: the context's own address (Linux inlines it as r0 = r1).
        var code = Assemble("mov %r6, %r1\ncall 0\nsub %r0, %r6\nexit");
        code[1] = code[1] with { Src = (byte)BpfJit.Frontend.CallKind.Kfunc, Imm = KfuncTable.CastToKernCtxId };
        var entry = Engines.Get(engine).Prepare(code, KernelHelpers.Table());
        var ctx = new byte[72];
        unsafe
        {
            fixed (byte* p = ctx) Assert.That(Run(entry, (ulong)p), Is.EqualTo(0ul));
        }
    }

    /// <summary>Value layout: [0, 8) struct bpf_pidns_info (0x5a before), [8, 16) the helper's result.</summary>
    static string NsProgram(ulong dev, ulong ino, int size) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        lddw %r1, {dev}
        lddw %r2, {ino}
        mov %r3, %r6
        mov %r4, {size}
        call 120
        stxdw [%r6+8], %r0
        out:
        mov %r0, 0
        exit
        """;

    /// <summary>The st_dev and st_ino of this process's pid namespace, as stat(1) prints them.</summary>
    static (ulong Dev, ulong Ino) PidNamespace()
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", "-L -c \"%d %i\" /proc/self/ns/pid") { RedirectStandardOutput = true };
        using var stat = System.Diagnostics.Process.Start(psi)!;
        var parts = stat.StandardOutput.ReadToEnd().Split(' ', StringSplitOptions.TrimEntries);
        stat.WaitForExit();
        return (ulong.Parse(parts[0]), ulong.Parse(parts[1]));
    }

    /// <summary>(dev, ino, size) of each call: the right namespace, another inode, a dev past 32 bits, a short buffer.</summary>
    static IEnumerable<(ulong Dev, ulong Ino, int Size)> NsCalls((ulong Dev, ulong Ino) ns) =>
        [(ns.Dev, ns.Ino, 8), (ns.Dev, ns.Ino + 1, 8), (ns.Dev | 1UL << 32, ns.Ino, 8), (ns.Dev, ns.Ino, 4)];

    static byte[] NsInitial()
    {
        var v = new byte[16];
        Array.Fill(v, (byte)0x5a, 0, 8);
        return v;
    }

    [Test]
    public void NsCurrentPidTgidAnswersForTheHostNamespaceOnly([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("pid namespaces are Linux's");
        var ns = PidNamespace();
        var (pidTgid, _, _) = Current();
        var results = NsCalls(ns).Select(c => EngineRun(engine, NsProgram(c.Dev, c.Ino, c.Size), 16, NsInitial()))
            .Select(v => (BitConverter.ToUInt64(v, 0), BitConverter.ToInt64(v, 8))).ToList();
        Assert.That(results, Is.EqualTo(new[]
        {
            (pidTgid, 0L),                                      // { u32 pid = thread id; u32 tgid = process id }
            (0UL, -22L),
            (0UL, -22L),
            (0x5a5a5a5a00000000UL, -22L),                       // only the 4 bytes passed are zeroed
        }));
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelAnswersNsCurrentPidTgidTheSame()
    {
        KernelBpf.RequireAvailable();
        var ns = PidNamespace();
        foreach (var c in NsCalls(ns))
        {
            var kernel = KernelRun(NsProgram(c.Dev, c.Ino, c.Size), 16, NsInitial());
            var ours = EngineRun("jit", NsProgram(c.Dev, c.Ino, c.Size), 16, NsInitial());
            Assert.That(kernel, Is.EqualTo(ours), $"dev {c.Dev} ino {c.Ino} size {c.Size}");
        }
    }

    /// <summary>BPF_PROG_TEST_RUN runs on the calling thread: the kernel's current is this test's thread.</summary>
    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelSeesTheSameThread([Values(16, 4)] int commSize)
    {
        KernelBpf.RequireAvailable();
        // NSpid lists one id per pid namespace: in a nested one the kernel's ids are not the ones this process sees.
        if (File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("NSpid:", StringComparison.Ordinal))
            .Split('\t', StringSplitOptions.RemoveEmptyEntries).Length > 2)
            Assert.Ignore("a nested pid namespace: the kernel's ids differ from the ones this process sees");
        var kernel = KernelRun(TaskProgram(commSize), 32, TaskInitial());
        var ours = EngineRun("jit", TaskProgram(commSize), 32, TaskInitial());
        Assert.That(kernel, Is.EqualTo(ours));
    }
}
