using System.Text.Json;
using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Cli;

/// <summary>
/// <c>verify --log</c> takes the kernel's log_level bits: 1 and 2 as before, 4 the statistics of
/// print_verification_stats, and their sums (5 = 1|4, 6 = 2|4).
/// </summary>
public partial class VerifyLogLevelTests
{
    [GeneratedRegex(@"^verification time \d+ usec$", RegexOptions.Multiline)]
    private static partial Regex TimeLine();

    [GeneratedRegex(@"^stack depth 8$", RegexOptions.Multiline)]
    private static partial Regex DepthLine();

    [GeneratedRegex(@"^processed \d+ insns \(limit 1000000\) max_states_per_insn \d+ total_states \d+ peak_states \d+ mark_read 0$", RegexOptions.Multiline)]
    private static partial Regex ProcessedLine();

    [GeneratedRegex(@"^\d+: \([0-9a-f]{2}\) ", RegexOptions.Multiline)]
    private static partial Regex InsnLine();

    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static string RedirPort => Path.Combine(Paths.RepoRoot, "tests", "programs", "redir_port.o");

    /// <summary>A program the verifier rejects at its second instruction (R2 is never written).</summary>
    const string Rejected = "mov %r0, 0\nmov %r0, %r2\nexit";

    [Test]
    public void Level4PrintsTheStatisticsAndNoInstructions()
    {
        var (code, output, _) = Run("verify", RedirPort, "--log", "4");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(TimeLine().IsMatch(output), Is.True, output);
        Assert.That(DepthLine().IsMatch(output), Is.True, "redir_port keeps its u32 key at fp-4: one 8-byte slot, as the kernel counts\n" + output);
        Assert.That(ProcessedLine().IsMatch(output), Is.True, output);
        Assert.That(InsnLine().IsMatch(output), Is.False, "level 4 alone prints no instruction\n" + output);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Select(l => l.Split(' ')[0]), Is.EqualTo(new[] { "verification", "stack", "processed" }), "the kernel's order");
        // What Linux 6.18 prints for this object (bpftool -d prog load): no visit compared against a checkpoint and missed.
        Assert.That(output, Does.Contain("processed 30 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 0"));
    }

    [Test]
    public void Level1PrintsOnlyTheProcessedLine()
    {
        var (code, output, _) = Run("verify", RedirPort, "--log", "1");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(TimeLine().IsMatch(output) || output.Contains("stack depth", StringComparison.Ordinal), Is.False, output);
        Assert.That(ProcessedLine().IsMatch(output), Is.True, output);
    }

    [Test]
    public void Level2PrintsStatesWithoutStatistics()
    {
        var (code, output, _) = Run("verify", RedirPort, "--log", "2");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("R1=ctx()"));
        Assert.That(TimeLine().IsMatch(output), Is.False, output);
    }

    [Test]
    public void Level5AddsTheStatisticsToARejection()
    {
        string file = WriteAsm(Rejected);
        var (code, output, _) = Run("verify", file, "--log", "5");
        Assert.That(code, Is.EqualTo(1), output);
        Assert.That(output, Does.Contain("1: (bf) r0 = r2").And.Contain("R2 !read_ok"));
        Assert.That(TimeLine().IsMatch(output), Is.True, output);
        Assert.That(output, Does.Contain("stack depth 0"));
        Assert.That(ProcessedLine().IsMatch(output), Is.True, output);

        var (_, level1, _) = Run("verify", file, "--log", "1");
        Assert.That(TimeLine().IsMatch(level1) || ProcessedLine().IsMatch(level1), Is.False, "level 1 keeps a rejection to the error\n" + level1);
    }

    [Test]
    public void Level4AloneStillPrintsTheErrorMessage()
    {
        var (code, output, _) = Run("verify", WriteAsm(Rejected), "--log", "4");
        Assert.That(code, Is.EqualTo(1), output);
        Assert.That(output, Does.Contain("R2 !read_ok"), "any non-zero level prints the messages");
        Assert.That(InsnLine().IsMatch(output), Is.False, "the instruction lines are levels 1 and 2\n" + output);
        Assert.That(TimeLine().IsMatch(output), Is.True, output);
    }

    [Test]
    public void Level6PrintsStatesAndStatistics()
    {
        var (code, output, _) = Run("verify", RedirPort, "--log", "6");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("R1=ctx()"));
        Assert.That(TimeLine().IsMatch(output) && DepthLine().IsMatch(output) && ProcessedLine().IsMatch(output), Is.True, output);
    }

    [TestCase("0")]
    [TestCase("8")]
    [TestCase("12")]
    [TestCase("x")]
    public void ALevelOutsideTheKernelsMaskIsAUsageError(string level)
    {
        var (code, _, err) = Run("verify", RedirPort, "--log", level);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("--log must be 1, 2 or 4"));
    }

    [Test]
    public void JsonCarriesTheNumbers()
    {
        var (code, output, _) = Run("verify", RedirPort, "--log", "4", "--json");
        Assert.That(code, Is.EqualTo(0), output);
        var program = JsonDocument.Parse(output).RootElement.GetProperty("programs")[0];
        var stats = program.GetProperty("stats");
        Assert.That(stats.GetProperty("verificationTimeUsec").GetInt64(), Is.GreaterThanOrEqualTo(0));
        Assert.That(stats.GetProperty("insnsProcessed").GetInt32(), Is.EqualTo(program.GetProperty("insnsProcessed").GetInt32()));
        Assert.That(stats.GetProperty("totalStates").GetInt32(), Is.GreaterThan(0));
        Assert.That(stats.GetProperty("peakStates").GetInt32(), Is.GreaterThan(0));
        Assert.That(program.GetProperty("log").GetString(), Does.Contain("stack depth 8"));
    }

    /// <summary>The kernel prints the same three statistics lines, in this order, with the same stack depths.</summary>
    [Test]
    [Category(KernelOracle.Category)]
    public void TheStatisticsLinesMatchTheKernels()
    {
        var code = Assembler.Assemble("stdw [%r10-8], 0\nldxw %r2, [%r1+60]\njgt %r2, 100, big\nmov %r0, 1\nexit\nbig:\nldxdw %r0, [%r10-8]\nexit");
        var ours = BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = BpfJit.Tests.Verifier.SkLookupTestHelpers.Table, LogLevel = 4 });
        KernelBpf.RequireAvailable();
        var kernel = KernelBpf.Load(code, [], logLevel: 4);
        static string[] Shape(string log) => log.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0)
            .Select(l => Regex.Replace(l, @"time \d+ usec", "time N usec")).ToArray();
        KernelOracle.Agrees(Shape(ours.Log).SequenceEqual(Shape(kernel.Log)), () => ours.Log + "\n---\n" + kernel.Log);
    }

    static string WriteAsm(string source)
    {
        string path = Path.Combine(Path.GetTempPath(), $"bpfjit-log-{Environment.ProcessId}-{Guid.NewGuid():N}.asm");
        File.WriteAllText(path, source);
        return path;
    }
}
