using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

public class BenchAndDemoTests
{
    [Test]
    public void BenchTimesAConformanceProgramOnBothEngines()
    {
        string path = Temp(".data", "-- asm\nmov %r0, 1\nadd %r0, 2\nexit\n-- result\n0x3\n");
        var json = Json("bench", path, "--seconds", "0");
        var engines = json.GetProperty("engines").EnumerateArray().ToList();
        Assert.That(engines.Select(e => e.GetProperty("engine").GetString()), Is.EqualTo(new[] { "interpreter", "jit" }));
        foreach (var e in engines)
        {
            Assert.That(e.GetProperty("runs").GetInt64(), Is.GreaterThan(0));
            Assert.That(e.GetProperty("nsPerRun").GetDouble(), Is.GreaterThan(0));
        }
        Assert.That(json.GetProperty("ratio").GetDouble(), Is.GreaterThan(0));
        Assert.That(json.GetProperty("context").ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Null));
        Assert.That(json.GetProperty("coldCompileMicros").GetDouble(), Is.GreaterThan(0));
        Assert.That(json.GetProperty("warmCompileMicros").GetDouble(), Is.GreaterThan(0));
    }

    [Test]
    public void BenchReportsTheColdAndWarmCompileTimesOfAnObject()
    {
        // Presence and sign only: the figures themselves belong to perf/ (docs/perf.md, "Cold start").
        var json = Json("bench", Repo("tests", "programs", "redir_port.o"), "--seconds", "0");
        Assert.That(json.GetProperty("coldCompileMicros").GetDouble(), Is.GreaterThan(0));
        Assert.That(json.GetProperty("warmCompileMicros").GetDouble(), Is.GreaterThan(0));
        var (code, output, err) = Run("bench", Repo("tests", "programs", "redir_port.o"), "--seconds", "0");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Match(@"jit compile to first run: [\d,]+ us cold \(first in the process\), [\d,]+ us warm"));
    }

    [Test]
    public void BenchRunsAnSkLookupProgramOnAContext()
    {
        var (code, output, err) = Run("bench", Repo("examples", "dispatcher.json"), "--to", "1.2.3.4:80", "--seconds", "0");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("on tcp 10.0.0.1:50000 -> 1.2.3.4:80").And.Contain("interpreter").And.Contain("ns/run").And.Contain("than the interpreter"));
    }

    [Test]
    public void BenchCaseSaysWhereTheSuitesCasesWent()
    {
        // The suite's cases run from perf/ (tests/Perf/SuiteCaseRunTests); the tool says so in one line.
        var (code, output, err) = Run("bench", "--case", "redir_port", "--seconds", "0");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(output, Is.Empty);
        Assert.That(err.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), err);
        Assert.That(err, Does.Contain("cd perf && dotnet run -c Release -- case NAME"));
        Assert.That(Run("bench", "--help").Out, Does.Not.Contain("--case"), "the help no longer offers it");
    }

    [Test]
    public void BenchBadInput()
    {
        AssertBadInput(Run("bench", Repo("examples", "dispatcher.json"), "--seconds", "soon"), "--seconds must be a number");
        AssertBadInput(Run("bench", Temp(".data", "-- asm\nfrob\n-- result\n0\n")), "unknown mnemonic");
        AssertBadInput(Run("bench", Temp(".data", "-- asm\nexit\n-- result\n0\n"), "--to", "1.2.3.4:80"), "takes no --scenario");
    }

    [Test]
    public void DemoRunsThePipelineOnTheEmbeddedDispatcher()
    {
        // Run from another directory: the demo must not depend on the repository's files.
        string saved = Environment.CurrentDirectory;
        Environment.CurrentDirectory = Path.GetTempPath();
        try
        {
            var (code, output, err) = Run("demo", "--seconds", "0", "--il-lines", "12");
            Assert.That(code, Is.EqualTo(0), err + output);
            Assert.That(output, Does.Contain("2. verify   accepted"));
            Assert.That(output, Does.Contain("tcp 10.0.0.1:50000 -> 1.2.3.1:443").And.Contain("-> nginx-ssl"));
            Assert.That(output, Does.Contain("9 of 9 as the scenario expects"));
            Assert.That(output, Does.Contain("interpreter").And.Contain("jit is"));
            Assert.That(output, Does.Contain("; 0: r6 = r1").And.Contain("IL_"));
        }
        finally
        {
            Environment.CurrentDirectory = saved;
        }
    }

    [Test]
    public void DemoJson()
    {
        var json = Json("demo", "--seconds", "0", "--il-lines", "5");
        Assert.That(json.GetProperty("verify").GetProperty("accepted").GetBoolean(), Is.True);
        var lookups = json.GetProperty("lookups").EnumerateArray().ToList();
        Assert.That(lookups, Has.Count.EqualTo(9));
        Assert.That(lookups.Select(l => l.GetProperty("decision").GetString()), Is.EqualTo(lookups.Select(l => l.GetProperty("expected").GetString())));
        Assert.That(json.GetProperty("asExpected").GetInt32(), Is.EqualTo(9));
        Assert.That(json.GetProperty("nsPerLookup").GetProperty("jit").GetDouble(), Is.GreaterThan(0));
        var il = json.GetProperty("il").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.That(il, Has.Count.EqualTo(5));
        Assert.That(il[0], Is.EqualTo("; 0: r6 = r1"));
    }

    [Test]
    public void DemoBadInput() => AssertBadInput(Run("demo", "extra"), "unexpected argument 'extra'");
}
