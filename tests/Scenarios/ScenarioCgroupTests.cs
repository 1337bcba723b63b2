using BpfJit.Tests.Support;

namespace BpfJit.Tests.Scenarios;

/// <summary>
/// A scenario file fills a CGROUP_ARRAY slot with <c>"cgroup"</c>: a directory of a cgroup v2 mount or a cgroup id
/// (tests/Cli/objects/cgroup_gate.c passes a lookup only when the running thread is under slot 0's cgroup); a bad one is
/// a one-line error naming the file and the JSON path (exit 2).
/// </summary>
[TestFixture]
public class ScenarioCgroupTests
{
    string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "bpfjit-cgroup-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        File.Copy(Path.Combine(Paths.RepoRoot, "tests", "Cli", "objects", "cgroup_gate.o"), Path.Combine(_dir, "g.o"));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    static string Scenario(string cgroupEntry, string expect) => $$"""
        {
          "object": "g.o",
          "attach": ["cgroup_gate"],
          "maps": {"gate": [{{cgroupEntry}}]},
          "lookups": [{"proto": "tcp", "from": "10.0.0.1:5555", "to": "1.2.3.1:443", "expect": "{{expect}}"}]
        }
        """;

    (int Code, string Out, string Err) Cli(string json)
    {
        string file = Path.Combine(_dir, "s.json");
        File.WriteAllText(file, json);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(["scenario", file], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public void AnIdOrADirectoryFillsTheSlot()
    {
        // Passed with no socket selected is "none"; dropped is "refused".
        Assert.That(Cli(Scenario("""{"key": 0, "cgroup": 1}""", "none")).Code, Is.Zero);
        Assert.That(Cli(Scenario("""{"key": 0, "cgroup": 987654321}""", "refused")).Code, Is.Zero);
        Assert.That(Cli(Scenario("""{"key": 1, "cgroup": 1}""", "refused")).Code, Is.Zero);
        string root = BpfJit.Tests.Cli.CgroupArrayCliTests.Cgroup2Root() ?? "";
        if (root.Length == 0) Assert.Ignore("no cgroup2 mount here");
        var (code, output, err) = Cli(Scenario($$"""{"key": 0, "cgroup": "{{root}}"}""", "none"));
        Assert.That(code, Is.Zero, output + err);
    }

    [TestCase("""{"key": 0, "cgroup": "/no/such/cgroup"}""", "$.maps.gate[0].cgroup: '/no/such/cgroup' is not a directory of a cgroup v2 mount (-EBADF)")]
    [TestCase("""{"key": 7, "cgroup": 1}""", "$.maps.gate[0].cgroup: index 7 is past map 'gate''s max_entries (-E2BIG)")]
    [TestCase("""{"key": 0, "cgroup": -1}""", "$.maps.gate[0].cgroup: a cgroup id must be a u64")]
    [TestCase("""{"key": 0, "cgroup": 1, "value": 1}""", "$.maps.gate[0].value: an entry with 'cgroup' takes no 'value' or 'socket'")]
    public void ABadCgroupIsOneLineWithPath(string entry, string message)
    {
        var (code, output, error) = Cli(Scenario(entry, "none"));
        Assert.That(code, Is.EqualTo(2), output);
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(error, Does.Contain("s.json: " + message));
    }
}
