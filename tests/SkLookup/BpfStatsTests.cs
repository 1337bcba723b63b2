using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Run statistics follow the kernel: <c>run_cnt</c>/<c>run_time_ns</c> move only while
/// <c>BPF_ENABLE_STATS</c> is held (<see cref="BpfStats.Enable"/>), so a run costs no counter update otherwise.
/// </summary>
[TestFixture, NonParallelizable]
public class BpfStatsTests
{
    static void RunTimes(SkLookupProgram program, int times)
    {
        using var ctx = new SkLookupContext();
        using (MapEpoch.Protect())
            for (int i = 0; i < times; i++) program.Run(ctx.Address);
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void RunsAreNotCountedWhileStatisticsAreOff(string engine)
    {
        Assert.That(BpfStats.Enabled, Is.False, "no test leaves statistics on");
        var program = Load(engine, "mov %r0, 1\nexit");
        RunTimes(program, 10);
        Assert.That((program.RunCount, program.RunTime), Is.EqualTo((0L, TimeSpan.Zero)));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void RunsAreCountedAndTimedWhileAHandleIsHeld(string engine)
    {
        var program = Load(engine, "mov %r0, 1\nexit");
        var stats = BpfStats.Enable();
        RunTimes(program, 7);
        Assert.That(program.RunCount, Is.EqualTo(7));
        Assert.That(program.RunTime, Is.GreaterThan(TimeSpan.Zero));
        stats.Dispose();
        RunTimes(program, 5);
        Assert.That(program.RunCount, Is.EqualTo(7), "runs after the handle is closed are not counted");
    }

    [Test]
    public void HandlesNestAndADoubleDisposeCountsOnce()
    {
        var program = Load("jit", "mov %r0, 1\nexit");
        var outer = BpfStats.Enable();
        var inner = BpfStats.Enable();
        inner.Dispose();
        inner.Dispose();
        Assert.That(BpfStats.Enabled, "the outer handle still holds statistics on");
        RunTimes(program, 3);
        outer.Dispose();
        Assert.That(BpfStats.Enabled, Is.False);
        RunTimes(program, 3);
        Assert.That(program.RunCount, Is.EqualTo(3));
    }

    [Test]
    public void HookLookupsCountEveryAttachedProgram()
    {
        using var ns = new NetNamespace();
        Tcp(ns, "127.0.0.1:7007");
        var first = Load("jit", "mov %r0, 1\nexit", "first");
        var second = Load("interpreter", "mov %r0, 1\nexit", "second");
        ns.SkLookup.Attach(first);
        ns.SkLookup.Attach(second);
        ns.Lookup(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        using (BpfStats.Enable())
            for (int i = 0; i < 4; i++) ns.Lookup(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        Assert.That((first.RunCount, second.RunCount), Is.EqualTo((4L, 4L)));
    }
}
