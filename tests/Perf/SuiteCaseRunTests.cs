using System.Text.Json;
using BpfJit.Baselines;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Tests.Perf;

/// <summary>
/// The perf project's <c>case</c> verb (<see cref="SuiteCaseRun"/>, what <c>dotnet run -c Release -- case NAME</c> in
/// perf/ runs; until issue 22 it was <c>bpfjit bench --case</c>): one suite case on the interpreter, the JIT and the
/// hand-written baseline, as text or JSON, and one-line errors with exit code 2.
/// </summary>
public sealed class SuiteCaseRunTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = SuiteCaseRun.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public void ACaseComparesTheEnginesWithItsHandWrittenBaseline()
    {
        var (code, output, err) = Run("redir_port", "--seconds", "0", "--json");
        Assert.That(code, Is.EqualTo(0), err);
        var json = JsonDocument.Parse(output).RootElement;
        Assert.That(json.GetProperty("program").GetString(), Is.EqualTo("case:redir_port"));
        var engines = json.GetProperty("engines").EnumerateArray().ToList();
        Assert.That(engines.Select(e => e.GetProperty("engine").GetString()), Is.EqualTo(new[] { "interpreter", "jit", "hand-written" }));
        Assert.That(engines.Select(e => e.GetProperty("runs").GetInt64()), Is.All.GreaterThan(0));
        Assert.That(engines.Select(e => e.GetProperty("nsPerRun").GetDouble()), Is.All.GreaterThan(0));
        Assert.That(json.GetProperty("ratio").GetDouble(), Is.GreaterThan(0));
        Assert.That(json.GetProperty("jitOverHandWritten").GetDouble(), Is.GreaterThan(0));
        Assert.That(json.GetProperty("context").GetString(), Does.EndWith("ingress_ifindex 1"));
        Assert.That(json.TryGetProperty("coldCompileMicros", out _), Is.False, "a case loads all its objects at once: no compile times");
    }

    [Test]
    public void TheTextFormNamesTheCaseAndTheRatios()
    {
        var (code, output, err) = Run("trivial", "--seconds", "0");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.StartWith("case trivial on "));
        Assert.That(output, Does.Contain("hand-written").And.Contain("ns/run").And.Contain("than the interpreter")
            .And.Contain("x the hand-written C# time"));
    }

    [Test]
    public void TheVerbInstallsTheVerifierAsAHostDoes()
    {
        // perf's Main installs nothing: without this the verb fails on its first program (no verifier is installed).
        var saved = ProgramVerification.Verifier;
        ProgramVerification.Verifier = null;
        try
        {
            var (code, _, err) = Run("trivial", "--seconds", "0");
            Assert.That(code, Is.EqualTo(0), err);
            Assert.That(ProgramVerification.Verifier, Is.InstanceOf<BpfJit.Verifier.SkLookupProgramVerifier>());
        }
        finally
        {
            ProgramVerification.Verifier = saved;
        }
    }

    [TestCase(new string[0], "no case given")]
    [TestCase(new[] { "nonesuch" }, "unknown case 'nonesuch'")]
    [TestCase(new[] { "redir_port", "x.o" }, "unexpected argument 'x.o'")]
    [TestCase(new[] { "redir_port", "--to", "1.2.3.4:80" }, "unexpected argument '--to'")]
    [TestCase(new[] { "redir_port", "--seconds", "soon" }, "--seconds must be a number")]
    public void BadUsageIsOneLineAndExitCode2(string[] args, string fragment)
    {
        var (code, output, err) = Run(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(output, Is.Empty);
        Assert.That(err, Does.StartWith("case: ").And.Contain(fragment));
        Assert.That(err.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), err);
    }
}
