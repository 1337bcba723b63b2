using System.Reflection;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Memory that every lookup writes must not share a cache line with memory another thread reads or
/// writes on every lookup: such false sharing kept two threads from scaling (docs/perf.md, branch
/// <c>scaling</c>). These check the layouts directly; no timing.
/// </summary>
[TestFixture]
public class SharedLineTests
{
    const int Line = 64;

    static long[] Counters(SkLookupProgram program) =>
        (long[])typeof(SkLookupProgram).GetField("_runs", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(program)!;

    [Test]
    public unsafe void RunCountersHaveALineEachAwayFromTheArrayHeader()
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var program = Load("jit", "mov %r0, 1\nexit");
        var runs = Counters(program);
        // The counters are the elements RunCount sums: find them one element at a time.
        var counters = new List<int>();
        for (int i = 0; i < runs.Length; i++)
        {
            runs[i] = 1;
            if (program.RunCount == 1) counters.Add(i);
            runs[i] = 0;
        }
        Assert.That(counters, Has.Count.GreaterThanOrEqualTo(Environment.ProcessorCount), "a counter per processor");
        using (var ctx = new SkLookupContext())
        using (MapEpoch.Protect())
            program.Run(ctx.Address);
        int written = Array.FindIndex(runs, v => v != 0);
        Assert.That(counters, Does.Contain(written), "a run increments one of the summed counters");
        fixed (long* data = runs)
        {
            ulong header = (ulong)data - sizeof(long);    // the length word every run's bounds check reads
            ulong end = (ulong)(data + runs.Length);      // the next heap object starts here
            var lines = new HashSet<ulong>();
            foreach (int i in counters)
            {
                ulong at = (ulong)(data + i);
                Assert.That(at / Line, Is.Not.EqualTo(header / Line), $"counter {i} shares the array header's line");
                Assert.That(at - header, Is.GreaterThanOrEqualTo((ulong)Line), $"counter {i} can share a line with the header or the object before");
                Assert.That(end - at, Is.GreaterThan((ulong)Line), $"counter {i} can share a line with the object after the array");
                Assert.That(lines.Add(at / Line), $"counter {i} shares a line with another counter");
            }
        }
    }

    [Test]
    public void RunCountIsExactFromSeveralThreads()
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var program = Load("jit", "mov %r0, 1\nexit");
        const int threads = 4, runs = 5000;
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            using var ctx = new SkLookupContext();
            using (MapEpoch.Protect())
                for (int i = 0; i < runs; i++) program.Run(ctx.Address);
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.That(program.RunCount, Is.EqualTo((long)threads * runs));
    }
}
