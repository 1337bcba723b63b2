using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary>
/// <c>run</c>/<c>bench --cgroup MAP:INDEX=CGROUP</c> fills a CGROUP_ARRAY slot with a cgroup v2 directory or a cgroup id
/// before the runs (tests/Cli/objects/cgroup_gate.c passes a lookup only when the running thread is under slot 0's cgroup);
/// a bad item is one line on stderr and exit 2.
/// </summary>
public class CgroupArrayCliTests
{
    static readonly string Gate = Repo("tests", "Cli", "objects", "cgroup_gate.o");
    static readonly string[] Packet = ["--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:443"];

    static string Verdict(params string[] extra) => Json(["run", Gate, .. Packet, .. extra]).GetProperty("verdict").GetString()!;

    /// <summary>The root of a cgroup2 mount (every thread is under it), or null when there is none.</summary>
    internal static string? Cgroup2Root()
    {
        try
        {
            return File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(" - ")).Where(p => p.Length == 2 && p[1].StartsWith("cgroup2 ", StringComparison.Ordinal))
                .Select(p => p[0].Split(' ')[4]).FirstOrDefault();
        }
        catch (IOException) { return null; }
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void AnIdFillsTheSlot(string engine)
    {
        // An empty slot is -EAGAIN (drop); the root cgroup (id 1) holds every thread; a cgroup id nothing has holds none.
        Assert.That(Verdict("--engine", engine), Is.EqualTo("SK_DROP"));
        Assert.That(Verdict("--engine", engine, "--cgroup", "gate:0=1"), Is.EqualTo("SK_PASS"));
        Assert.That(Verdict("--engine", engine, "--cgroup", "gate:0=987654321"), Is.EqualTo("SK_DROP"));
        Assert.That(Verdict("--engine", engine, "--cgroup", "gate:1=1"), Is.EqualTo("SK_DROP"), "slot 1 is not the one the program reads");
    }

    [Test]
    public void ADirectoryFillsTheSlot()
    {
        string root = Cgroup2Root() ?? "";
        if (root.Length == 0) Assert.Ignore("no cgroup2 mount here");
        Assert.That(Verdict("--cgroup", $"gate:0={root}"), Is.EqualTo("SK_PASS"));
        Assert.That(Verdict("--cgroup", $"gate:1=1, gate:0={root}"), Is.EqualTo("SK_PASS"), "a list of items");
    }

    [TestCase("gate:0=/no/such/cgroup", "--cgroup gate:0=/no/such/cgroup: '/no/such/cgroup' is not a directory of a cgroup v2 mount (-EBADF)")]
    [TestCase("gate:0=0", "--cgroup gate:0=0: cgroup id 0 is not a cgroup (-EBADF)")]
    [TestCase("gate:2=1", "--cgroup gate:2=1: index 2 is past map 'gate''s max_entries (-E2BIG)")]
    [TestCase("nope:0=1", "--cgroup nope:0=1: the program has no map 'nope'")]
    [TestCase("gate:x=1", "--cgroup gate:x=1: index 'x' is not a u32")]
    [TestCase("gate=1", "--cgroup gate=1: expected MAP:INDEX=CGROUP (a cgroup v2 directory or a cgroup id)")]
    public void ABadItemIsOneLineAndExitTwo(string item, string message)
    {
        foreach (var verb in new[] { "run", "bench" })
        {
            var (code, output, err) = Run([verb, Gate, .. Packet, "--cgroup", item]);
            Assert.That(code, Is.EqualTo(2), $"{verb}: {output}{err}");
            Assert.That(err.TrimEnd().Split('\n'), Has.Length.EqualTo(1), err);
            Assert.That(err, Does.Contain(message), verb);
        }
    }

    [Test]
    public void BenchTimesWithTheSlotFilled()
    {
        var (code, output, err) = Run(["bench", Gate, .. Packet, "--cgroup", "gate:0=1", "--seconds", "0.05"]);
        Assert.That(code, Is.Zero, output + err);
    }
}
