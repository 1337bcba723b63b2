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

    const string Classic = """
        {
          "sockets": [
            {"name": "A", "proto": "tcp", "bind": "127.0.0.1:8008", "state": "listen", "reuseport": "g"},
            {"name": "B", "proto": "tcp", "bind": "127.0.0.1:8008", "state": "listen", "reuseport": "g"}
          ],
          "reuseport_groups": {"g": {"cbpf": CODE}},
          "lookups": [{"proto": "tcp", "from": "127.0.0.9:51000", "to": "127.0.0.1:8008", "expect": "B"}]
        }
        """;

    static string WriteClassic(string code)
    {
        string file = Path.Combine(Path.GetTempPath(), $"cbpf-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, Classic.Replace("CODE", code));
        return file;
    }

    [Test]
    public void A_group_takes_a_classic_program()
    {
        // ldb [SKF_NET_OFF + 9] (IPPROTO_TCP, 6); sub #5; ret a: member 1, B.
        string file = WriteClassic("[[48, 0, 0, -1048567], [20, 0, 0, 5], [22, 0, 0, 0]]");
        try
        {
            using var env = ScenarioBuilder.Build(file, Engines.Get("interpreter"));
            Assert.That(env.Sockets["A"].ReuseportGroup!.ClassicProgram?.Code, Has.Count.EqualTo(3));
            var output = new StringWriter();
            Assert.That(ScenarioRunner.Run(env, output), Is.EqualTo(new ScenarioOutcome(1, 0)), output.ToString());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void A_group_takes_a_classic_program_from_a_cbpf_file()
    {
        // The same filter in tcpdump -ddd's text form, in a file beside the scenario (ClassicFilter.Parse).
        string dir = Path.Combine(Path.GetTempPath(), $"cbpf-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "net9.cbpf"), "# ldb [SKF_NET_OFF + 9]; sub #5; ret a\n3\n48 0 0 -1048567\n20 0 0 5\n22 0 0 0\n");
            string file = Path.Combine(dir, "s.json");
            File.WriteAllText(file, Classic.Replace("CODE", "\"net9.cbpf\""));
            using var env = ScenarioBuilder.Build(file, Engines.Get("interpreter"));
            Assert.That(env.Sockets["A"].ReuseportGroup!.ClassicProgram?.Code, Has.Count.EqualTo(3));
            var output = new StringWriter();
            Assert.That(ScenarioRunner.Run(env, output), Is.EqualTo(new ScenarioOutcome(1, 0)), output.ToString());
            File.WriteAllText(file, Classic.Replace("CODE", "\"missing.cbpf\""));
            var e = Assert.Throws<ScenarioException>(() => ScenarioBuilder.Build(file, Engines.Get("interpreter")));
            Assert.That(e!.Message, Does.Contain("$.reuseport_groups.g.cbpf: missing.cbpf:"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void A_classic_program_the_kernel_refuses_is_a_scenario_error()
    {
        string file = WriteClassic("[[52, 0, 0, 0], [6, 0, 0, 0]]");
        try
        {
            var e = Assert.Throws<ScenarioException>(() => ScenarioBuilder.Build(file, Engines.Get("interpreter")));
            Assert.That(e!.Message, Does.Contain("$.reuseport_groups.g.cbpf: SO_ATTACH_REUSEPORT_CBPF: insn 0: division by constant 0 (EINVAL)"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
