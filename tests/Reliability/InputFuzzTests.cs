using BpfJit.Fuzz;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// CI side of input fuzzing (tools/fuzz, docs/reliability.md): every corpus file goes through every
/// harness and must end normally or in a typed BpfException; then a short fixed-seed in-process
/// mutation run per harness. Crashes found by longer runs are added below as regular tests.
/// </summary>
[TestFixture]
public class InputFuzzTests
{
    static IEnumerable<TestCaseData> Names() => Harnesses.All.Select(h => new TestCaseData(h.Name).SetName($"input fuzz [{h.Name}]"));

    static readonly string[] s_folders = ["elf", "decode", "asm", "conformance", "scenario"];

    [TestCaseSource(nameof(Names))]
    public void EveryCorpusFileThroughEveryHarnessEndsInATypedOutcome(string name)
    {
        var harness = Harnesses.Get(name);
        var crashes = new List<string>();
        int files = 0;
        foreach (var folder in s_folders)
            foreach (var (file, bytes) in Harnesses.Corpus(folder))
            {
                files++;
                try { harness.Run(bytes); }
                catch (Exception e) when (Harnesses.IsExpected(e)) { }
                catch (Exception e) { crashes.Add($"{file}: {e.GetType().Name}: {e.Message}"); }
            }
        Assert.That(files, Is.GreaterThan(100), "the corpus is present");
        Assert.That(crashes, Is.Empty, string.Join("\n", crashes.Take(10)));
    }

    [TestCaseSource(nameof(Names))]
    public void AFixedSeedMutationRunFindsNoCrash(string name)
    {
        var harness = Harnesses.Get(name);
        var report = MutationReport.Run(harness, name == "scenario" ? 300 : 2000, seed: 1);
        TestContext.Out.WriteLine(report);
        Assert.That(report.CrashInputs.Select(c => $"{c.Error.GetType().Name}: {c.Error.Message} on {Convert.ToHexString(c.Input.AsSpan(0, Math.Min(64, c.Input.Length)))}"), Is.Empty);
        Assert.That(report.Executions - report.Rejected, Is.GreaterThan(0), "some mutated inputs are still valid");
    }

    /// <summary>
    /// Found by <c>BpfJit.Fuzz all --mutate 100000 --seed 7</c>: a numeric jump target past 16 bits made the
    /// assembler (and so the conformance parser) throw OverflowException instead of naming the line.
    /// </summary>
    [TestCase("jne %r6, 0xfffff, 0x80000001\nexit", "jump offset out of range: '0x80000001'")]
    [TestCase("mov %r0, 0\njset %r1, %r0, 0x1100110011001100\nexit", "jump offset out of range")]
    [TestCase("ja 40000\nexit", "offset 40000 out of 16-bit range")]
    [TestCase("call 0x100000001\nexit", "immediate out of 32-bit range")]
    public void OutOfRangeJumpTargetsAreAssemblerErrors(string source, string message)
    {
        var e = Assert.Throws<BpfJit.Frontend.BpfAssemblerException>(() => BpfJit.Frontend.Assembler.Assemble(source))!;
        Assert.That(e.Message, Does.StartWith("line ").And.Contain(message));
        Assert.Catch<BpfJit.Frontend.BpfException>(() => Harnesses.Get("conformance").Run(System.Text.Encoding.UTF8.GetBytes("-- asm\n" + source + "\n-- result\n0\n")));
    }

    [Test]
    public void TheCorpusCoversEveryHarnessFolder()
    {
        foreach (var folder in Harnesses.All.Select(h => h.CorpusFolder).Distinct())
            Assert.That(Harnesses.Corpus(folder).Count(), Is.GreaterThanOrEqualTo(5), folder);
    }
}
