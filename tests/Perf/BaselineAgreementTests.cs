using BpfJit.Baselines;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Perf;

/// <summary>
/// The benchmark suite's hand-written C# baselines (perf/Baselines) decide exactly as the eBPF
/// programs they stand for, on each engine: same return value, same selected socket, same
/// no_reuseport flag and same 72 context bytes after the run, on a few hundred random contexts per
/// case (some with a socket already selected), program by program and as the whole run array.
/// Without this the "native-speed line" of docs/perf.md would compare different work.
/// </summary>
public sealed class BaselineAgreementTests
{
    const int Contexts = 400;

    static IEnumerable<TestCaseData> Cases() =>
        from c in SuiteCases.Names from e in Engines.Names select new TestCaseData(c, e).SetName($"BaselineAgrees({c}, {e})");

    [TestCaseSource(nameof(Cases))]
    public void BaselineAgrees(string caseName, string engine)
    {
        using var suite = SuiteCases.Create(caseName);
        var programs = suite.LoadPrograms(Engines.Get(engine));
        var handWritten = suite.LoadHandWritten();
        var baselines = suite.Baselines;
        Assert.That(baselines.Select(b => b.Name), Is.EqualTo(suite.ProgramNames));
        using var ctxProgram = new SkLookupContext();
        using var ctxBaseline = new SkLookupContext();
        var rng = new Random(7 + caseName.Length);
        var outcomes = new HashSet<(uint Ret, bool Selected)>();
        var verdicts = new HashSet<(bool Pass, bool Selected)>();
        MapEpoch.Enter();
        try
        {
            for (int n = 0; n <= Contexts; n++)
            {
                // The last context is the benchmarks' timed packet.
                var packet = n == Contexts ? suite.TimedPacket : suite.RandomPacket(rng);
                nint preset = n < Contexts && suite.Sockets.Count > 0 && rng.Next(8) == 0 ? suite.Sockets[rng.Next(suite.Sockets.Count)].Handle : 0;
                for (int i = 0; i < programs.Length; i++)
                {
                    ctxProgram.Fill(packet);
                    ctxBaseline.Fill(packet);
                    ctxProgram.SelectedSocket = ctxBaseline.SelectedSocket = preset;
                    uint expected = programs[i].Run(ctxProgram.Address);
                    uint actual = baselines[i].Run(ctxBaseline.Address);
                    string what = $"{suite.ProgramNames[i]} on {packet} (preset {(preset != 0 ? "socket" : "none")})";
                    Assert.That(actual, Is.EqualTo(expected), $"return value, {what}");
                    Assert.That(ctxBaseline.SelectedSocket, Is.EqualTo(ctxProgram.SelectedSocket), $"selected socket, {what}");
                    Assert.That(ctxBaseline.NoReuseport, Is.EqualTo(ctxProgram.NoReuseport), $"no_reuseport, {what}");
                    Assert.That(ctxBaseline.Visible.ToArray(), Is.EqualTo(ctxProgram.Visible.ToArray()), $"context after the run, {what}");
                    outcomes.Add((expected, ctxProgram.SelectedSocket != 0 && ctxProgram.SelectedSocket != preset));
                }
                ctxProgram.Fill(packet);
                ctxBaseline.Fill(packet);
                var vp = SkLookupHook.RunArray(programs, ctxProgram);
                var vb = SkLookupHook.RunArray(handWritten, ctxBaseline);
                Assert.That(vb, Is.EqualTo(vp), $"run array on {packet}");
                verdicts.Add((vp.Pass, vp.Selected != 0));
                if (n == Contexts) Assert.That(vp.Selected != 0, Is.EqualTo(suite.TimedSelects), "the timed packet's selection");
            }
        }
        finally
        {
            MapEpoch.Exit();
        }
        // The random contexts reach more than one decision (a test that only ever saw SK_PASS would prove little).
        Assert.That(outcomes.Count, Is.GreaterThanOrEqualTo(caseName == "trivial" ? 1 : 2), string.Join(", ", outcomes));
        if (suite.TimedSelects) Assert.That(verdicts, Does.Contain((true, true)).And.Contain((false, false)), string.Join(", ", verdicts));
    }
}

/// <summary>
/// The benchmark suite's kernel column loads every case into Linux with the same map contents and
/// real sockets, and the kernel decides the timed packet as BpfJit does (skipped where bpf() is not permitted).
/// </summary>
public sealed class KernelSuiteTests
{
    static IEnumerable<string> CaseNames => SuiteCases.Names;

    [TestCaseSource(nameof(CaseNames))]
    [Category(Support.KernelOracle.Category)]
    public void KernelDecidesTheTimedPacketAsBpfJit(string caseName)
    {
        Support.KernelBpf.RequireAvailable();
        using var suite = SuiteCases.Create(caseName);
        IReadOnlyList<KernelRun> runs;
        try
        {
            runs = KernelSuite.Run(suite, repeat: 1);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("BPF_PROG_LOAD failed", StringComparison.Ordinal))
        {
            Support.KernelOracle.Differs(Support.KernelOracle.RecordedRelease, $"{caseName}: the kernel refuses a program: {e.Message}");
            return;
        }
        var programs = suite.LoadPrograms(Engines.Get("jit"));
        using var ctx = new SkLookupContext();
        MapEpoch.Enter();
        try
        {
            for (int i = 0; i < programs.Length; i++)
            {
                // The kernel's test run has ingress_ifindex 0; so does this run.
                ctx.Fill(suite.TimedPacket with { IngressIfindex = 0 });
                uint ret = programs[i].Run(ctx.Address);
                Assert.That(runs[i].Errno, Is.Zero, runs[i].Program);
                Assert.That(runs[i].Retval, Is.EqualTo(ret), runs[i].Program);
                Assert.That(runs[i].Selected, Is.EqualTo(ctx.SelectedSocket != 0), runs[i].Program);
            }
        }
        finally
        {
            MapEpoch.Exit();
        }
        if (suite.TimedSelects) Assert.That(runs[runs.Count - 1].Selected, Is.True, "the kernel selected no socket");
    }
}
