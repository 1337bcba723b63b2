using BpfJit.Runtime.Scenarios;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Scenarios;

/// <summary>Bad scenario files give one-line errors with the JSON path (exit 2); failing expectations give FAIL (exit 1).</summary>
[TestFixture]
public class ScenarioErrorTests
{
    string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "bpfjit-scenario-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        File.Copy(Path.Combine(Paths.RepoRoot, "tests", "scenarios", "progs", "test_sk_lookup.o"), Path.Combine(_dir, "t.o"));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    const string Good = """
        {
          "object": "t.o",
          "attach": ["redir_port"],
          "sockets": [{"name": "A", "proto": "tcp", "bind": "127.0.0.1:8008"}],
          "maps": {"redir_map": [{"key": 0, "socket": "A"}]},
          "lookups": [{"proto": "tcp", "from": "127.0.0.2:8008", "to": "127.0.0.1:7007", "expect": "A"}]
        }
        """;

    (int Code, string Out, string Err) Cli(string json, params string[] extra)
    {
        string file = Path.Combine(_dir, "s.json");
        File.WriteAllText(file, json);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(["scenario", file, .. extra], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void GoodFileExitsZero(string engine)
    {
        var (code, output, _) = Cli(Good, "--engine", engine);
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("PASS tcp 127.0.0.2:8008 -> 127.0.0.1:7007: socket A"));
        Assert.That(output, Does.EndWith("1 passed, 0 failed" + Environment.NewLine));
    }

    [Test]
    public void WrongExpectationFails()
    {
        var (code, output, _) = Cli(Good.Replace("\"expect\": \"A\"", "\"expect\": \"refused\""));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(output, Does.Contain("FAIL tcp 127.0.0.2:8008 -> 127.0.0.1:7007: socket A (expected refused)"));
        Assert.That(output, Does.Contain("0 passed, 1 failed"));
    }

    static IEnumerable<TestCaseData> BadFiles()
    {
        yield return new TestCaseData(Good.Replace("\"bind\": \"127.0.0.1:8008\"", "\"bind\": \"1.2.3:8008\""),
            "$.sockets[0].bind: invalid address '1.2.3:8008'").SetName("bad address");
        yield return new TestCaseData(Good.Replace("\"bind\":", "\"colour\": 1, \"bind\":"), "$.sockets[0].colour: unknown field 'colour'").SetName("unknown socket field");
        yield return new TestCaseData(Good.Replace("\"attach\"", "\"atach\""), "$.atach: unknown field 'atach'").SetName("unknown root field");
        yield return new TestCaseData(Good.Replace("\"socket\": \"A\"", "\"socket\": \"Z\""), "$.maps.redir_map[0].socket: unknown socket 'Z'").SetName("unknown socket name");
        yield return new TestCaseData(Good.Replace("\"expect\": \"A\"", "\"expect\": \"Q\""), "$.lookups[0].expect: unknown socket 'Q'").SetName("unknown expect");
        yield return new TestCaseData(Good.Replace("[\"redir_port\"]", "[\"nope\"]"), "$.attach[0]: unknown program 'nope'").SetName("unknown program");
        yield return new TestCaseData(Good.Replace("\"redir_map\"", "\"no_map\""), "$.maps.no_map: unknown map 'no_map'").SetName("unknown map");
        yield return new TestCaseData(Good.Replace("\"key\": 0", "\"key\": \"hex:0000\""), "$.maps.redir_map[0].key: key has 2 bytes, the map needs 4").SetName("short hex key");
        yield return new TestCaseData(Good.Replace("\"key\": 0", "\"key\": 4294967296"), "$.maps.redir_map[0].key: key 4294967296 does not fit in 4 bytes").SetName("key too big");
        yield return new TestCaseData(Good.Replace("\"to\": \"127.0.0.1:7007\"", "\"to\": \"[::1]:7007\""), "$.lookups[0].to: 'from' is Inet but 'to' is Inet6").SetName("mixed families");
        yield return new TestCaseData(Good.Replace("\"proto\": \"tcp\", \"bind\"", "\"proto\": \"sctp\", \"bind\""), "$.sockets[0].proto: 'sctp' is not one of tcp, udp").SetName("bad proto");
        yield return new TestCaseData(Good.Replace("\"t.o\"", "\"missing.o\""), "$.object:").SetName("missing object");
        yield return new TestCaseData(Good.Replace("}]", "}, {\"name\": \"B\", \"proto\": \"tcp\", \"bind\": \"127.0.0.1:8008\"}]"),
            "$.sockets[1]: socket B: 127.0.0.1:8008 is in use by socket A (EADDRINUSE)").SetName("bind conflict");
        yield return new TestCaseData("{ \"lookups\": [ }", "$: invalid JSON").SetName("invalid json");
        yield return new TestCaseData(Good.Replace("\"attach\"", "\"map_definitions\": {\"m\": {\"type\": \"sockmap\", \"key_size\": 8, \"value_size\": 8, \"max_entries\": 1}}, \"attach\""),
            "$.map_definitions.m: map m (SockMap): key_size 8: must be 4 (-EINVAL)").SetName("bad map definition");
        yield return new TestCaseData(Good.Replace("\"attach\"", "\"map_definitions\": {\"m\": {\"type\": \"teapot\"}}, \"attach\""),
            "$.map_definitions.m.type: unknown map type 'teapot'").SetName("unknown map type");
        yield return new TestCaseData(Good.Replace("\"maps\"", "\"reuseport_groups\": {\"g\": {\"drop\": true}}, \"maps\""),
            "$.reuseport_groups.g: no socket joined reuseport group 'g'").SetName("unknown reuseport group");
        yield return new TestCaseData(Good.Replace("\"bind\": \"127.0.0.1:8008\"", "\"bind\": \"127.0.0.1:8008\", \"state\": \"connected\""),
            "$.sockets[0]: a connected socket needs 'peer'").SetName("connected without peer");
        yield return new TestCaseData(Good.Replace("{\"proto\": \"tcp\", \"from\"", "{\"update\": \"redir_map\", \"key\": 0, \"value\": 5}, {\"proto\": \"tcp\", \"from\""),
            "$.lookups[0].value: a value of socket map 'redir_map' names a socket").SetName("socket map value not a name");
        yield return new TestCaseData(Good.Replace("[\"redir_port\"]", "[\"redir_port\"], \"programs\": {\"p\": {\"asm\": \"lddw %r1, map:nope\\nexit\"}}")
            .Replace("\"lookups\": [", "\"lookups\": [{\"attach\": \"p\"}, "), "$.programs.p.asm: unknown map 'nope'").SetName("inline asm unknown map");
    }

    [TestCaseSource(nameof(BadFiles))]
    public void BadFileIsOneLineWithPath(string json, string message)
    {
        var (code, output, error) = Cli(json);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(output, Is.Empty, "nothing runs before the file is valid");
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(error, Does.Contain("s.json: " + message));
    }
}
