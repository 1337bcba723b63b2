using BpfJit.Runtime.Conformance;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Conformance;

/// <summary>The bpf_conformance suite (../shared/conformance) and the ../shared/bench programs, on every engine.</summary>
[TestFixture]
public class ConformanceTests
{
    static IEnumerable<TestCaseData> Cases(string sub)
    {
        string? shared = Paths.Shared;
        string dir = shared == null ? "" : Path.Combine(shared, sub);
        if (!Directory.Exists(dir))
        {
            // One visible placeholder per engine so the skip shows in the results.
            foreach (var engine in Engines.Names)
                yield return new TestCaseData(engine, "").SetName($"{sub}[{engine}] (../shared absent)");
            yield break;
        }
        foreach (var engine in Engines.Names)
            foreach (var file in Directory.GetFiles(dir, "*.data").Order(StringComparer.Ordinal))
                yield return new TestCaseData(engine, file).SetName($"{sub}[{engine}] {Path.GetFileNameWithoutExtension(file)}");
    }

    static IEnumerable<TestCaseData> ConformanceCases() => Cases("conformance");

    static IEnumerable<TestCaseData> BenchCases() => Cases("bench");

    [TestCaseSource(nameof(ConformanceCases))]
    public void Conformance(string engine, string file) => Check(engine, file);

    [TestCaseSource(nameof(BenchCases))]
    public void Bench(string engine, string file) => Check(engine, file);

    static void Check(string engine, string file)
    {
        if (file.Length == 0) Assert.Ignore("../shared is not present beside the repository: conformance skipped");
        var result = ConformanceRunner.RunFile(file, Engines.Get(engine));
        Assert.That(result.Status, Is.EqualTo(ConformanceStatus.Pass), result.Detail);
    }

    [Test]
    public void WholeSuiteHas313Files()
    {
        string dir = Paths.RequireShared("conformance");
        Assert.That(Directory.GetFiles(dir, "*.data"), Has.Length.EqualTo(313));
    }
}
