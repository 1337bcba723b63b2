using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkLookup;

/// <summary>Programs from objects go through the installed verifier before they are bound or run.</summary>
[TestFixture, NonParallelizable]
public class ProgramVerificationTests
{
    sealed class Refuse : IProgramVerifier
    {
        public List<string> Seen { get; } = [];

        public void Verify(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers)
        {
            Seen.Add($"{program.Name}:{string.Join(",", maps.Select(m => $"{m.Name}/{m.KeySize}/{m.ValueSize}"))}");
            throw new BpfException("0: (b7) r0 = 7\nAt program exit the register R0 has smin=7 smax=7 should have been in [0, 1]");
        }
    }

    static string Scenario => Path.Combine(Paths.RepoRoot, "tests", "scenarios", Directory.GetFiles(Path.Combine(Paths.RepoRoot, "tests", "scenarios"), "*.json")
        .Select(Path.GetFileName).First(f => File.ReadAllText(Path.Combine(Paths.RepoRoot, "tests", "scenarios", f!)).Contains("\"object\""))!);

    [Test]
    public void ARejectedProgramIsNeverRun()
    {
        var saved = ProgramVerification.Verifier;
        var refuse = new Refuse();
        ProgramVerification.Verifier = refuse;
        try
        {
            var e = Assert.Catch<BpfException>(() => ScenarioBuilder.Build(Scenario, InterpreterEngine.Instance).Dispose())!;
            Assert.That(e.Message, Does.Contain("should have been in [0, 1]"));
            Assert.That(refuse.Seen, Is.Not.Empty, "the verifier saw the program with its live maps");
        }
        finally
        {
            ProgramVerification.Verifier = saved;
        }
    }

    [Test]
    public void WithoutAVerifierObjectProgramsAreRefused()
    {
        var saved = ProgramVerification.Verifier;
        ProgramVerification.Verifier = null;
        try
        {
            var e = Assert.Catch<BpfException>(() => ScenarioBuilder.Build(Scenario, InterpreterEngine.Instance).Dispose())!;
            Assert.That(e.Message, Does.Contain("no verifier is installed"));
        }
        finally
        {
            ProgramVerification.Verifier = saved;
        }
    }
}
