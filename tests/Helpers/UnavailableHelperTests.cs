using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// The helpers with nothing to act on in a host process (signals, branch records, perf counters, user memory) on both
/// engines, each with the kernel's result when it cannot act (copy_from_user* the kernel refuses: they may sleep); the kernel loads the same program, and gives the same
/// results where its answer does not depend on the calling task (not the signals: the kernel would signal the test).
/// </summary>
[TestFixture]
public class UnavailableHelperTests
{
    const int ValueSize = 208;
    const int PerfEntries = 4;

    /// <summary>(what, instructions leaving r0, the result slot, the expected result here).</summary>
    static readonly (string What, string Code, long Expected, bool Signal)[] s_calls =
    [
        ("send_signal(0)", $"mov %r1, 0\ncall {KernelHelpers.SendSignalId}", -1, true),
        ("send_signal(SIGKILL)", $"mov %r1, 9\ncall {KernelHelpers.SendSignalId}", -1, true),
        ("send_signal(100)", $"mov %r1, 100\ncall {KernelHelpers.SendSignalId}", -1, true),
        ("send_signal_thread(0)", $"mov %r1, 0\ncall {KernelHelpers.SendSignalThreadId}", -1, true),
        ("get_branch_snapshot(buf, 32, 0)", $"mov %r1, %r6\nadd %r1, 112\nmov %r2, 32\nmov %r3, 0\ncall {KernelHelpers.GetBranchSnapshotId}", -2, false),
        ("get_branch_snapshot(buf, 32, 1)", $"mov %r1, %r6\nadd %r1, 112\nmov %r2, 32\nmov %r3, 1\ncall {KernelHelpers.GetBranchSnapshotId}", -22, false),
        ("perf_event_read(empty slot 0)", $"ldmap %r1, 1\nmov %r2, 0\ncall {KernelHelpers.PerfEventReadId}", -2, false),
        ("perf_event_read(index 7)", $"ldmap %r1, 1\nmov %r2, 7\ncall {KernelHelpers.PerfEventReadId}", -7, false),
        ("perf_event_read(flags 1<<32)", $"ldmap %r1, 1\nlddw %r2, 0x100000000\ncall {KernelHelpers.PerfEventReadId}", -22, false),
        ("perf_event_read_value(slot 1, 24)", $"ldmap %r1, 1\nmov %r2, 1\nmov %r3, %r6\nadd %r3, 144\nmov %r4, 24\ncall {KernelHelpers.PerfEventReadValueId}", -2, false),
        ("perf_event_read_value(slot 1, 16)", $"ldmap %r1, 1\nmov %r2, 1\nmov %r3, %r6\nadd %r3, 168\nmov %r4, 16\ncall {KernelHelpers.PerfEventReadValueId}", -22, false),
    ];

    /// <summary>The program: each call's r0 stored at 8 * i; buffers at [112, 144), [144, 168), [168, 184).</summary>
    static string Program(bool signals)
    {
        var sb = new System.Text.StringBuilder("""
            stw [%r10-4], 0
            ldmap %r1, 0
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, out
            mov %r6, %r0

            """);
        for (int i = 0; i < s_calls.Length; i++)
        {
            if (s_calls[i].Signal && !signals) continue;
            sb.Append(s_calls[i].Code).Append($"\nstxdw [%r6+{8 * i}], %r0\n");
        }
        sb.Append("out:\nmov %r0, 0\nexit\n");
        return sb.ToString();
    }

    static byte[] Initial()
    {
        var value = new byte[ValueSize];
        Array.Fill(value, (byte)0x5a);
        return value;
    }

    static void CheckBuffers(byte[] value, string who)
    {
        Assert.That(value.AsSpan(112, 32).ToArray(), Is.All.EqualTo((byte)0x5a), $"{who}: get_branch_snapshot writes nothing");
        Assert.That(value.AsSpan(144, 24).ToArray(), Is.All.EqualTo((byte)0), $"{who}: a failed perf_event_read_value zeroes its buffer");
        Assert.That(value.AsSpan(168, 16).ToArray(), Is.All.EqualTo((byte)0), $"{who}: ... of any size");
    }

    [Test]
    public void BothEnginesGiveTheKernelsFailures()
    {
        foreach (var engine in Engines.Names)
        {
            using var map = MapFactory.Create(MapType.Array, 4, ValueSize, 1, 0, "v");
            using var perf = MapFactory.Create(MapType.PerfEventArray, 4, 4, PerfEntries, 0, "perf");
            Assert.That(map.Update(U32(0), Initial()), Is.EqualTo(0));
            Run(engine, Program(signals: true), 0, map, perf);
            var value = new byte[ValueSize];
            Assert.That(map.Lookup(U32(0), value), Is.EqualTo(0));
            for (int i = 0; i < s_calls.Length; i++)
                Assert.That(BitConverter.ToInt64(value, 8 * i), Is.EqualTo(s_calls[i].Expected), $"{engine}: {s_calls[i].What}");
            CheckBuffers(value, engine);
        }
    }

    [Test]
    public void PerfEventReadOfASinkIsAZeroCounter()
    {
        foreach (var engine in Engines.Names)
        {
            using var map = MapFactory.Create(MapType.Array, 4, ValueSize, 1, 0, "v");
            using var perf = (PerfEventArrayMap)MapFactory.Create(MapType.PerfEventArray, 4, 4, PerfEntries, 0, "perf");
            perf.SetSinkForAll((_, _) => { });
            Assert.That(map.Update(U32(0), Initial()), Is.EqualTo(0));
            Run(engine, Program(signals: false), 0, map, perf);
            var value = new byte[ValueSize];
            Assert.That(map.Lookup(U32(0), value), Is.EqualTo(0));
            Assert.That(BitConverter.ToInt64(value, 8 * 6), Is.EqualTo(0), $"{engine}: perf_event_read");
            Assert.That(BitConverter.ToInt64(value, 8 * 9), Is.EqualTo(0), $"{engine}: perf_event_read_value");
            Assert.That(value.AsSpan(144, 24).ToArray(), Is.All.EqualTo((byte)0), $"{engine}: counter, enabled, running");
        }
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelLoadsThemAndFailsAlike()
    {
        KernelBpf.RequireAvailable();
        int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, ValueSize, 1, 0);
        int perf = KernelBpf.CreateMap((uint)MapType.PerfEventArray, 4, 4, PerfEntries, 0);
        Assert.That(fd >= 0 && perf >= 0, $"BPF_MAP_CREATE {fd} {perf}");
        try
        {
            // With the signals: loaded only (a test run would signal the test process).
            var load = KernelBpf.Load(Assemble(Program(signals: true)), [fd, perf]);
            Assert.That(load.Accepted, Is.True, load.Log);
            Assert.That(KernelBpf.Update(fd, U32(0), Initial()), Is.EqualTo(0));
            var ctx = new byte[72];
            ctx[8] = 2;
            ctx[12] = 6;
            var r = KernelBpf.TestRun(Assemble(Program(signals: false)), [fd, perf], ctx);
            Assert.That(r.Errno, Is.EqualTo(0), "BPF_PROG_TEST_RUN");
            var value = new byte[ValueSize];
            Assert.That(KernelBpf.Lookup(fd, U32(0), value), Is.EqualTo(0));
            var differences = new List<string>();
            for (int i = 0; i < s_calls.Length; i++)
            {
                if (s_calls[i].Signal) continue;
                long got = BitConverter.ToInt64(value, 8 * i);
                if (got != s_calls[i].Expected) differences.Add($"{s_calls[i].What}: kernel {got}, here {s_calls[i].Expected}");
            }
            if (differences.Count > 0) KernelOracle.Differs("6.18.44-fc-v1300", string.Join("\n", differences));
            CheckBuffers(value, "kernel");
        }
        finally
        {
            KernelBpf.Close(fd);
            KernelBpf.Close(perf);
        }
    }

    static string CopyProgram(int helper) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r1, %r0
        mov %r2, 16
        mov %r3, 0x1000
        mov %r4, 0
        mov %r5, 0
        call {helper}
        out:
        mov %r0, 0
        exit
        """;

    static readonly int[] s_sleepers = [KernelHelpers.CopyFromUserId, KernelHelpers.CopyFromUserTaskId];

    [TestCaseSource(nameof(s_sleepers))]
    public void HelpersThatMaySleepAreRefused(int helper)
    {
        var verdict = BpfJit.Verifier.Verifier.Verify(Assemble(CopyProgram(helper)), new BpfJit.Verifier.VerifierOptions
        {
            Helpers = KernelHelpers.Table(),
            Maps = [new BpfJit.Verifier.MapInfo("v", MapType.Array, 4, ValueSize, 1)],
        });
        Assert.That(verdict.Accepted, Is.False);
        Assert.That(verdict.Error, Is.EqualTo("helper call might sleep in a non-sleepable prog"));
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelRefusesHelpersThatMaySleep()
    {
        KernelBpf.RequireAvailable();
        int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, ValueSize, 1, 0);
        try
        {
            foreach (int helper in s_sleepers)
            {
                var load = KernelBpf.Load(Assemble(CopyProgram(helper)), [fd]);
                KernelOracle.Agrees(!load.Accepted && load.Log.Contains("helper call might sleep in a non-sleepable prog", StringComparison.Ordinal),
                    () => $"helper {helper}: {load.Log}");
            }
        }
        finally
        {
            KernelBpf.Close(fd);
        }
    }
}
