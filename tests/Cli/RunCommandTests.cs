using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

public class RunCommandTests
{
    static readonly string Dispatcher = Repo("examples", "dispatcher.json");

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void AScenarioProgramSelectsTheBoundSocket(string engine)
    {
        var (code, output, err) = Run("run", Dispatcher, "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.1:443", "--engine", engine);
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("retval 1 (SK_PASS), socket nginx-ssl (cookie "));
    }

    [Test]
    public void JsonNamesRetvalAndSocket()
    {
        var json = Json("run", Repo("tests", "programs", "dispatcher.o"), "--scenario", Dispatcher,
            "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "4.3.2.1:443", "--engine", "jit");
        Assert.That(json.GetProperty("program").GetString(), Is.EqualTo("dispatcher"));
        Assert.That(json.GetProperty("retval").GetInt32(), Is.EqualTo(1));
        Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo("new-tls-thing"));
        Assert.That(json.GetProperty("socket").GetProperty("cookie").GetUInt64(), Is.GreaterThan(0UL));
        Assert.That(json.GetProperty("context").GetProperty("family").GetString(), Is.EqualTo("inet"));
    }

    [Test]
    public void NoBindingPassesWithoutASocket()
    {
        var json = Json("run", Dispatcher, "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "5.5.5.5:80");
        Assert.That(json.GetProperty("verdict").GetString(), Is.EqualTo("SK_PASS"));
        Assert.That(json.GetProperty("socket").ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Null));
    }

    [Test]
    public void IPv6ContextReachesAnIPv6Socket()
    {
        var json = Json("run", Repo("examples", "captures", "replay.json"), "--proto", "tcp", "--from", "[fd00::99]:5555", "--to", "[fd00::1]:80");
        Assert.That(json.GetProperty("context").GetProperty("family").GetString(), Is.EqualTo("inet6"));
        Assert.That(json.GetProperty("socket").GetProperty("name").GetString(), Is.EqualTo("web6"));
    }

    [Test]
    public void ADropIsRetvalZero()
    {
        // replay.json binds 5.5.5.0/24 to a service without a socket: the dispatcher drops.
        var json = Json("run", Repo("examples", "captures", "replay.json"), "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "5.5.5.5:22");
        Assert.That(json.GetProperty("retval").GetInt32(), Is.EqualTo(0));
        Assert.That(json.GetProperty("verdict").GetString(), Is.EqualTo("SK_DROP"));
    }

    [Test]
    public void AnAsmProgramWithoutMapsRuns()
    {
        string path = Temp(".asm", "mov %r0, 0\nexit\n");
        var json = Json("run", path, "--proto", "udp", "--from", "10.0.0.1:1", "--to", "10.0.0.2:2", "--ifindex", "7");
        Assert.That(json.GetProperty("retval").GetInt32(), Is.EqualTo(0));
        Assert.That(json.GetProperty("context").GetProperty("ifindex").GetInt32(), Is.EqualTo(7));
    }

    [Test]
    public void ARejectedProgramIsANegativeResult()
    {
        string path = Temp(".asm", "exit\n"); // r0 is never written
        var (code, _, err) = Run("run", path, "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "10.0.0.2:2");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(err, Does.Contain(path).And.Contain("verifier rejected"));
    }

    [Test]
    public void BadInputIsOneLine()
    {
        AssertBadInput(Run("run", Dispatcher, "--proto", "tcp", "--from", "10.0.0.1:5555"), "--to is required");
        AssertBadInput(Run("run", Dispatcher, "--proto", "tcp", "--from", "10.0.0.1", "--to", "1.2.3.1:443"), "--from '10.0.0.1' is not IP:PORT");
        AssertBadInput(Run("run", Dispatcher, "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "[::1]:443"), "different address families");
        AssertBadInput(Run("run", "nope.o", "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "10.0.0.1:2"), "nope.o: no such file");
        // The object's zero-sized 'destinations' map needs a scenario's definition.
        AssertBadInput(Run("run", Repo("tests", "programs", "dispatcher.o"), "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "10.0.0.1:2"),
            "dispatcher.o: map destinations", "--scenario");
        AssertBadInput(Run("run", Dispatcher, "--program", "nope", "--proto", "tcp", "--from", "10.0.0.1:1", "--to", "10.0.0.1:2"),
            "no program named 'nope'");
    }
}
