using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Issue 17, deliverable 5: background compiles past <see cref="TierUpQueue.MaxPending"/> are shed visibly (a
/// counter, a faulted <see cref="CompiledProgram.JitCompleted"/>) and the shed programs stay correct on the
/// interpreter; the others still switch to RyuJIT's code.
/// </summary>
[TestFixture]
[NonParallelizable]
public class TierUpQueueTests
{
    [Test]
    public void CompilesPastTheLimitAreShedVisiblyAndStayCorrect()
    {
        var program = Assembler.Assemble("mov %r0, %r1\nadd %r0, 7\nmul %r0, 3\nexit");
        var options = new JitOptions { Tiered = true };
        var before = TierUpQueue.Statistics;
        int saved = TierUpQueue.MaxPending;
        var compiled = new List<CompiledProgram>();
        try
        {
            TierUpQueue.MaxPending = 1;
            // Emitting takes tens of microseconds, RyuJIT's compile hundreds: the queue is full after the first.
            for (int i = 0; i < 200; i++) compiled.Add(JitCompiler.Compile(program, HelperTable.Bench(), options));
        }
        finally
        {
            TierUpQueue.MaxPending = saved;
        }
        foreach (var c in compiled)
        {
            try { c.JitCompleted.Wait(); }
            catch (AggregateException e) when (e.InnerException is BpfCompileException ce && ce.Message.Contains("shed", StringComparison.Ordinal)) { }
        }
        var after = TierUpQueue.Statistics;
        int shed = compiled.Count(c => c.JitCompleted.IsFaulted);
        TestContext.Out.WriteLine($"{shed} of {compiled.Count} shed; statistics {after}");
        Assert.That(shed, Is.GreaterThan(0), "a queue of 1 sheds part of a burst of 200");
        Assert.That(compiled.Count(c => c.IsJitted), Is.GreaterThan(0), "the first compile is never shed");
        Assert.That(after.Shed - before.Shed, Is.GreaterThanOrEqualTo(shed));
        Assert.That(after.Pending, Is.Zero);
        foreach (var c in compiled) Assert.That(c.Run(5), Is.EqualTo(36UL));
    }
}
