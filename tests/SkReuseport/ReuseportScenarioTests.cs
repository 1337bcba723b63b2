using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkReuseport;

/// <summary>Scenario files attach the kernel selftest's SK_REUSEPORT programs to a group (<c>"reuseport_groups": {"g": {"program": NAME}}</c>).</summary>
[TestFixture]
public class ReuseportScenarioTests
{
    static string Scenario(string name) => Path.Combine(Paths.RepoRoot, "tests", "scenarios", name + ".json");

    [Test]
    public void TheGroupRunsTheObjectsProgram([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var env = ScenarioBuilder.Build(Scenario("selftest_tcp4_redir_with_reuseport"), Engines.Get(engine));
        var group = env.Sockets["A"].ReuseportGroup!;
        Assert.That(group.Program?.Name, Is.EqualTo("select_sock_b"));
        Assert.That(group.Selector, Is.Null, "no stand-in");
        Assert.That(group.Program!.Facts?.ProgramType, Is.EqualTo(BpfJit.Frontend.Elf.ProgramType.SkReuseport), "verified as SK_REUSEPORT");
        var output = new StringWriter();
        var outcome = ScenarioRunner.Run(env, output);
        Assert.That(outcome, Is.EqualTo(new ScenarioOutcome(1, 0)), output.ToString());
        Assert.That(group.Program.RunCount, Is.EqualTo(1));
    }

    [Test]
    public void AnSkLookupProgramIsNotAReuseportProgram()
    {
        string file = Path.Combine(Path.GetTempPath(), $"rp-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, File.ReadAllText(Scenario("selftest_tcp4_redir_with_reuseport"))
            .Replace("\"program\": \"select_sock_b\"", "\"program\": \"select_sock_a\"")
            .Replace("progs/test_sk_lookup.o", Path.Combine(Paths.RepoRoot, "tests", "scenarios", "progs", "test_sk_lookup.o")));
        try
        {
            var e = Assert.Throws<ScenarioException>(() => ScenarioBuilder.Build(file, Engines.Get("interpreter")));
            Assert.That(e!.Message, Does.Contain("no SK_REUSEPORT program 'select_sock_a' in the object"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
