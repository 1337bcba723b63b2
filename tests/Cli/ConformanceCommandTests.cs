using BpfJit.Tests.Support;

namespace BpfJit.Tests.Cli;

public class ConformanceCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static string TempData(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"bpfjit-{Guid.NewGuid():n}.data");
        File.WriteAllText(path, text);
        return path;
    }

    [Test]
    public void WholeSuitePassesOnTheInterpreter()
    {
        string dir = Paths.RequireShared("conformance");
        var (code, output, _) = Run("conformance", dir, "--quiet");
        Assert.That(output.TrimEnd().Split('\n')[^1].Trim(), Is.EqualTo("313 passed, 0 failed"));
        Assert.That(code, Is.EqualTo(0));
    }

    [Test]
    public void AFailingTestExitsOneWithExpectedAndActual()
    {
        string path = TempData("-- asm\nmov %r0, 2\nexit\n-- result\n0x3\n");
        var (code, output, _) = Run("conformance", path);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(output, Does.Contain("FAIL").And.Contain("expected 0x3, got 0x2"));
        Assert.That(output, Does.Contain("0 passed, 1 failed"));
    }

    [TestCase("-- asm\nmov %r0, 2\nfrob %r1\nexit\n-- result\n0x3\n", "line 3: unknown mnemonic 'frob'")]
    [TestCase("-- raw\n0x00000000000000ff\n0x95\n-- result\n0x0\n", "instruction 0: unknown opcode 0xff")]
    [TestCase("-- raw\n0x0000000000000018\n-- result\n0x0\n", "instruction 0: truncated ld_imm64")]
    [TestCase("-- asm\nexit\n-- mem\nzz\n-- result\n0\n", "line 4: invalid memory byte 'zz'")]
    public void MalformedFilesAreOneLineErrorsWithExitTwo(string text, string message)
    {
        string path = TempData(text);
        var (code, _, err) = Run("conformance", path);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(err, Does.Contain(path).And.Contain(message));
        Assert.That(err, Does.Not.Contain("   at "));
    }

    [Test]
    public void CpuOptionSkipsNewerTests()
    {
        string path = TempData("-- asm\nmov %r0, 1\njlt %r0, 2, +0\nexit\n-- result\n0x1\n");
        var (code, output, _) = Run("conformance", path, "--cpu", "v1");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.Contain("SKIP").And.Contain("needs cpu v2").And.Contain("0 passed, 0 failed, 1 skipped"));
    }

    [TestCase(new[] { "conformance" }, "no PATH given")]
    [TestCase(new[] { "conformance", "x.data", "--engine", "llvm" }, "--engine must be one of")]
    [TestCase(new[] { "conformance", "/nonexistent/x.data" }, "no such file")]
    [TestCase(new[] { "nosuchverb" }, "unknown command")]
    public void UsageErrorsExitTwo(string[] args, string message)
    {
        var (code, _, err) = Run(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain(message));
    }

    [Test]
    public void HelpListsEveryVerbWithExamples()
    {
        var (code, output, _) = Run("--help");
        Assert.That(code, Is.EqualTo(0));
        foreach (var c in BpfJit.Cli.Cli.Commands.Where(c => !c.Hidden))
        {
            // Hidden verbs (protocols for scripts, like 'plugin') are not listed, but document themselves alike.
            if (!c.Hidden) Assert.That(output, Does.Contain(c.Name));
            var (_, usage, _) = Run(c.Name, "--help");
            Assert.That(usage, Does.Contain("usage: bpfjit " + c.Name).And.Contain("example"));
        }
    }
}
