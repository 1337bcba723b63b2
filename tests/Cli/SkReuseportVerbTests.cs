using System.Text.Json;
using BpfJit.Frontend;
using BpfJit.Runtime.ProgramTypes.SkReuseport;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary>
/// run, bench, dump and feature on SK_REUSEPORT programs: the kernel selftest object's <c>reuseport_pass</c>,
/// <c>reuseport_drop</c> and <c>select_sock_b</c> (bpf_sk_select_reuseport on redir_map key 1).
/// </summary>
public class SkReuseportVerbTests
{
    static readonly string Object = Repo("tests", "scenarios", "progs", "test_sk_lookup.o");

    static JsonElement RunJson(string program, string proto, params string[] more) =>
        Json(["run", Object, "--program", program, "--proto", proto, "--from", "127.0.0.9:40000", "--to", "127.0.0.1:9000", .. more]);

    [Test]
    public void SelectSockBSelectsTheMemberAtKeyOne(
        [Values("interpreter", "jit")] string engine, [Values("tcp", "udp")] string proto)
    {
        // The members fill redir_map (a SOCKMAP) by index: key 1 is member1, which the program selects.
        var json = RunJson("select_sock_b", proto, "--engine", engine, "--members", "3");
        Assert.That(json.GetProperty("programType").GetString(), Is.EqualTo("sk_reuseport"));
        Assert.That(json.GetProperty("engine").GetString(), Is.EqualTo(engine));
        Assert.That(json.GetProperty("members").GetArrayLength(), Is.EqualTo(3));
        // The lookup walks the chain newest first: the program sees the last member bound (listening, for TCP), as Linux's does.
        Assert.That(json.GetProperty("context").GetProperty("sk").GetString(), Is.EqualTo("member2"));
        Assert.That(json.GetProperty("context").GetProperty("proto").GetString(), Is.EqualTo(proto));
        Assert.That(json.GetProperty("retval").GetInt32(), Is.EqualTo(1));
        Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("select"));
        Assert.That(json.GetProperty("selected").GetProperty("name").GetString(), Is.EqualTo("member1"));
        Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo("member1"));
    }

    [Test]
    public void SelectSockBDropsWhenKeyOneIsEmpty()
    {
        // One member: key 1 stays empty, bpf_sk_select_reuseport returns -ENOENT and the program returns SK_DROP.
        var json = RunJson("select_sock_b", "udp", "--members", "1");
        Assert.That(json.GetProperty("retval").GetInt32(), Is.EqualTo(0));
        Assert.That(json.GetProperty("verdict").GetString(), Is.EqualTo("SK_DROP"));
        Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("drop"));
        Assert.That(json.GetProperty("socket").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void ReuseportDropDrops(string engine)
    {
        var (code, output, err) = Run("run", Object, "--program", "reuseport_drop", "--proto", "tcp", "--from", "127.0.0.9:40000", "--to", "127.0.0.1:9000", "--engine", engine);
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("program test_sk_lookup.o: reuseport_drop (sk_reuseport, " + engine + ")"));
        Assert.That(output, Does.Contain("retval 0 (SK_DROP), dropped"));
    }

    [Test]
    public void ReuseportPassLeavesTheChoiceToTheHash([Values(2, 3, 5)] int members)
    {
        var json = RunJson("reuseport_pass", "udp", "--members", members.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(json.GetProperty("outcome").GetString(), Is.EqualTo("hash"));
        Assert.That(json.GetProperty("selected").ValueKind, Is.EqualTo(JsonValueKind.Null));
        // reuseport_select_sock_by_hash: reciprocal_scale(hash, n) over the members.
        uint hash = json.GetProperty("context").GetProperty("hash").GetUInt32();
        int index = (int)(((ulong)hash * (ulong)members) >> 32);
        Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo($"member{index}"));
    }

    [Test]
    public void AScenarioGivesTheGroupAndTheMap()
    {
        // The selftest scenario's group g (A, B on 127.0.0.2:8008) and its redir_map (A at 0, B at 1).
        var json = Json("run", Repo("tests", "scenarios", "selftest_tcp4_redir_with_reuseport.json"), "--program", "select_sock_b",
            "--proto", "tcp", "--from", "127.0.0.1:51000", "--to", "127.0.0.2:8008", "--engine", "jit");
        // B listened last: the kernel's lookup meets it first (this test expected A, the group's first member, before).
        Assert.That(json.GetProperty("context").GetProperty("sk").GetString(), Is.EqualTo("B"));
        Assert.That(json.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("name").GetString()), Is.EqualTo(new[] { "A", "B" }));
        Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo("B"));
    }

    [Test]
    public void RepeatAndDumpMapsShowTheSockmap()
    {
        var json = RunJson("select_sock_b", "tcp", "--repeat", "10", "--dump-maps");
        Assert.That(json.GetProperty("repeat").GetInt32(), Is.EqualTo(10));
        var map = json.GetProperty("maps").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "redir_map");
        Assert.That(map.GetProperty("elements").GetArrayLength(), Is.EqualTo(2), "member0 and member1 at keys 0 and 1");
    }

    [Test]
    public void BadMembersIsOneLine()
    {
        AssertBadInput(Run("run", Object, "--program", "select_sock_b", "--proto", "udp", "--from", "127.0.0.9:1", "--to", "127.0.0.1:9000", "--members", "0"),
            "--members must be a number of sockets from 1 to 256, not '0'");
        AssertBadInput(Run("run", Object, "--program", "lookup_pass", "--proto", "udp", "--from", "127.0.0.9:1", "--to", "127.0.0.1:9000", "--members", "3"),
            "--members applies to SK_REUSEPORT programs only");
        AssertBadInput(Run("run", Repo("tests", "Loader", "objects", "mixed_types.o"), "--program", "xdp_prog", "--proto", "tcp", "--from", "1.1.1.1:1", "--to", "2.2.2.2:2"),
            "program xdp_prog: program type Xdp is not supported (only sk_lookup and sk_reuseport)");
    }

    [Test]
    public void BenchTimesItOnBothEngines()
    {
        var json = Json("bench", Object, "--program", "select_sock_b", "--proto", "udp", "--to", "127.0.0.1:9000", "--seconds", "0");
        Assert.That(json.GetProperty("program").GetString(), Is.EqualTo("test_sk_lookup.o:select_sock_b"));
        var engines = json.GetProperty("engines").EnumerateArray().ToList();
        Assert.That(engines.Select(e => e.GetProperty("engine").GetString()), Is.EqualTo(new[] { "interpreter", "jit" }));
        Assert.That(engines.Select(e => e.GetProperty("runs").GetInt64()), Has.All.GreaterThan(0L));
        Assert.That(json.GetProperty("warmCompileMicros").GetDouble(), Is.GreaterThan(0));
    }

    [Test]
    public void DumpShowsItsIlAndXlatedCode()
    {
        var (code, output, err) = Run("dump", Object, "--program", "select_sock_b", "--xlated", "--il");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("; select_sock_b: 12 slots as the engine compiles them"));
        Assert.That(output, Does.Contain("r2 = map[redir_map] ll"));
        Assert.That(output, Does.Contain("; 7: call bpf_sk_select_reuseport#82"));
        var cs = Run("dump", Object, "--program", "reuseport_drop", "--cs");
        Assert.That(cs.Code, Is.EqualTo(0), cs.Err);
        Assert.That(cs.Out, Does.Contain("return 0uL;"));
    }

    [Test]
    public void FeatureListsTheTypeItsAttachTypesAndHelpers()
    {
        var json = Json("feature");
        Assert.That(json.GetProperty("programTypes").EnumerateArray().Select(e => (e.GetProperty("name").GetString(), e.GetProperty("id").GetInt32())),
            Does.Contain(("sk_reuseport", 21)));
        var attach = json.GetProperty("attachTypes").EnumerateArray()
            .Where(e => e.GetProperty("programType").GetString() == "sk_reuseport")
            .Select(e => (e.GetProperty("name").GetString(), e.GetProperty("id").GetInt32()));
        Assert.That(attach, Is.EqualTo(new[] { ("sk_reuseport_select", 39), ("sk_reuseport_select_or_migrate", 40) }));
        var listed = json.GetProperty("helpers").GetProperty("sk_reuseport").EnumerateArray().Select(e => e.GetProperty("id").GetInt32()).ToList();
        var missing = json.GetProperty("kernelHelpersNotProvided").GetProperty("sk_reuseport").EnumerateArray().Select(e => e.GetProperty("id").GetInt32()).ToList();
        Assert.That(listed, Does.Contain(82).And.Contain(26).And.Contain(68).And.Contain(46));
        Assert.That(listed, Does.Not.Contain(50), "bpf_sk_assign is SK_LOOKUP's");
        // Listed and not provided together are the declaration's helper list.
        var declared = Enumerable.Range(1, HelperNames.Count - 1).Where(SkReuseportType.Instance.IsHelperAllowed);
        Assert.That(listed.Concat(missing).Order(), Is.EqualTo(declared));
        Assert.That(json.GetProperty("mapTypes").EnumerateArray().Select(e => e.GetProperty("name").GetString()), Does.Contain("reuseport_sockarray"));
        var (code, text, _) = Run("feature");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(text, Does.Contain("eBPF program_type sk_reuseport (21) is available"));
        Assert.That(text, Does.Contain("eBPF attach_type sk_reuseport_select (39) is available for program type sk_reuseport"));
        Assert.That(text, Does.Contain("eBPF helpers supported for program type sk_reuseport:\n"));
    }
}
