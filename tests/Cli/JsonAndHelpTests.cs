using System.Text.Json;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

public class JsonAndHelpTests
{
    static readonly string[] Verbs = ["demo", "run", "scenario", "replay", "bench", "verify", "cfg", "inspect", "disasm", "dump", "conformance"];

    [Test]
    public void HelpListsEveryVerb()
    {
        var (code, output, _) = Run("--help");
        Assert.That(code, Is.EqualTo(0));
        foreach (var verb in Verbs) Assert.That(output, Does.Contain($"  {verb} "), verb);
    }

    [TestCaseSource(nameof(Verbs))]
    public void EveryVerbHasUsageExamplesAndExitCodes(string verb)
    {
        var (code, output, _) = Run(verb, "--help");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.StartWith($"usage: bpfjit {verb}"));
        Assert.That(output, Does.Contain("example"));
        Assert.That(output, Does.Contain($"bpfjit {verb}").Or.Contain($"-- {verb}"));
        Assert.That(output, Does.Contain("Exit code"));
    }

    [Test]
    public void UnknownOptionsAreUsageErrors()
    {
        foreach (var verb in Verbs)
            AssertBadInput(Run(verb, "--frobnicate"), $"bpfjit {verb}", "'--frobnicate'");
    }

    [Test]
    public void DisasmJson()
    {
        var json = Json("disasm", Repo("tests", "programs", "dispatcher.o"));
        var program = json.GetProperty("programs")[0];
        Assert.That(program.GetProperty("name").GetString(), Is.EqualTo("dispatcher"));
        var insns = program.GetProperty("instructions").EnumerateArray().ToList();
        Assert.That(insns[0].GetProperty("function").GetString(), Is.EqualTo("dispatcher"));
        Assert.That(insns.Any(i => i.TryGetProperty("map", out var m) && m.GetString() == "bindings"), Is.True);
    }

    [Test]
    public void VerifyJsonForAnObjectAndARejectedFile()
    {
        var json = Json("verify", Repo("tests", "programs", "multi_prog.o"));
        var programs = json.GetProperty("programs").EnumerateArray().ToList();
        Assert.That(programs, Has.Count.GreaterThan(1));
        Assert.That(programs.All(p => p.GetProperty("accepted").GetBoolean()), Is.True);
        Assert.That(programs[0].GetProperty("insnsProcessed").GetInt32(), Is.GreaterThan(0));

        var (code, output, _) = Run("verify", Temp(".asm", "exit\n"), "--json");
        Assert.That(code, Is.EqualTo(1));
        var rejected = JsonDocument.Parse(output).RootElement.GetProperty("programs")[0];
        Assert.That(rejected.GetProperty("accepted").GetBoolean(), Is.False);
        Assert.That(rejected.GetProperty("errorInsn").GetInt32(), Is.EqualTo(0));
        Assert.That(rejected.GetProperty("error").GetString(), Does.Contain("R0"));
    }

    [Test]
    public void DumpJsonGroupsIlByInstruction()
    {
        string path = Temp(".data", "-- asm\nmov %r0, 1\nadd %r0, 2\nexit\n-- result\n0x3\n");
        var json = Json("dump", path, "--il", "--cs");
        Assert.That(json.GetProperty("slots").GetInt32(), Is.EqualTo(3));
        var blocks = json.GetProperty("il").GetProperty("blocks").EnumerateArray().ToList();
        var slots = blocks.Where(b => b.GetProperty("slot").ValueKind == JsonValueKind.Number).ToList();
        Assert.That(slots.Select(b => b.GetProperty("slot").GetInt32()), Is.EqualTo(new[] { 0, 1, 2 }));
        Assert.That(slots[1].GetProperty("comment").GetString(), Is.EqualTo("r0 += 2"));
        Assert.That(slots[1].GetProperty("il").EnumerateArray().Select(i => i.GetString()), Has.Some.Contains("add"));
        Assert.That(json.GetProperty("il").GetProperty("header")[0].GetString(), Does.Contain("Run("));
        Assert.That(json.GetProperty("cs").GetString(), Does.Contain("Run"));
    }

    [Test]
    public void ScenarioJson()
    {
        var json = Json("scenario", Repo("examples", "dispatcher.json"), "--engine", "jit");
        Assert.That(json.GetProperty("passed").GetInt32(), Is.EqualTo(9));
        var file = json.GetProperty("files")[0];
        var steps = file.GetProperty("steps").EnumerateArray().ToList();
        Assert.That(steps, Has.Count.EqualTo(9));
        Assert.That(steps[2].GetProperty("status").GetString(), Is.EqualTo("pass"));
        Assert.That(steps[2].GetProperty("text").GetString(), Is.EqualTo("tcp 10.0.0.1:50000 -> 1.2.3.1:443: socket nginx-ssl"));
    }

    [Test]
    public void ConformanceJson()
    {
        string pass = Temp(".data", "-- asm\nmov %r0, 3\nexit\n-- result\n0x3\n");
        string fail = Temp(".data", "-- asm\nmov %r0, 2\nexit\n-- result\n0x3\n");
        var (code, output, _) = Run("conformance", pass, fail, "--json");
        Assert.That(code, Is.EqualTo(1));
        var json = JsonDocument.Parse(output).RootElement;
        Assert.That(json.GetProperty("passed").GetInt32(), Is.EqualTo(1));
        Assert.That(json.GetProperty("failed").GetInt32(), Is.EqualTo(1));
        var results = json.GetProperty("results").EnumerateArray().ToList();
        Assert.That(results.Select(r => r.GetProperty("status").GetString()), Is.EquivalentTo(new[] { "pass", "fail" }));
        Assert.That(results.Single(r => r.GetProperty("status").GetString() == "fail").GetProperty("detail").GetString(), Does.Contain("expected 0x3"));
    }

    [Test]
    public void InspectJson()
    {
        var json = Json("inspect", Repo("tests", "programs", "dispatcher.o"));
        Assert.That(json.GetProperty("maps").EnumerateArray().Select(m => m.GetProperty("name").GetString()), Does.Contain("bindings"));
    }

    [Test]
    public void MainBadInputOfTheObjectVerbs()
    {
        string notElf = Temp(".o", "hello");
        AssertBadInput(Run("inspect", notElf), notElf);
        AssertBadInput(Run("disasm", notElf), notElf);
        AssertBadInput(Run("verify", Temp(".bin", new byte[] { 1, 2, 3 })), "3 bytes is not a whole number");
        AssertBadInput(Run("dump", "missing.data"), "missing.data: no such file");
        AssertBadInput(Run("scenario", Temp(".json", "{\"sockets\": [{\"name\": \"A\", \"proto\": \"sctp\"}]}")), "$.sockets[0].proto");
    }
}
