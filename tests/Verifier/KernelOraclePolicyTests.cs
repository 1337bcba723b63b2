using BpfJit.Tests.Support;

namespace BpfJit.Tests.Verifier;

/// <summary>When a different live kernel answer fails a test and when it is only reported.</summary>
[TestFixture]
public class KernelOraclePolicyTests
{
    [Test]
    public void AnAnswerRecordedOnTheLiveBuildIsStrict() =>
        Assert.That(KernelOracle.IsStrict(KernelOracle.LiveRelease), Is.True);

    [Test]
    public void AnAnswerRecordedOnAnotherBuildIsStrictOnlyWhenAskedFor() =>
        Assert.That(KernelOracle.IsStrict("0.0.0-another-build"), Is.EqualTo(KernelOracle.StrictRequested));

    [Test]
    public void TheLiveReleaseIsRead() =>
        Assert.That(KernelOracle.LiveRelease, Is.Not.Empty);

    [Test]
    public void EveryCorpusFileNamesTheBuildItWasCheckedOn()
    {
        string dir = Path.Combine(Paths.RepoRoot, "tests", "Verifier", "cases");
        foreach (var file in Directory.GetFiles(dir, "*.txt"))
            Assert.That(File.ReadLines(file).TakeWhile(l => !l.StartsWith("## name:", StringComparison.Ordinal)).Any(l => l.StartsWith("## checked-on: ", StringComparison.Ordinal)),
                Is.True, $"{Path.GetFileName(file)}: a ## checked-on: line before the first case");
    }
}
