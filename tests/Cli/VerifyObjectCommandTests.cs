using BpfJit.Tests.Support;

namespace BpfJit.Tests.Cli;

public class VerifyObjectCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static string Corpus(string name) => Path.Combine(Paths.RepoRoot, "tests", "programs", name);

    [Test]
    public void EveryProgramOfAnObjectIsVerified()
    {
        var (code, output, _) = Run("verify", Corpus("multi_prog.o"));
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("program multi_pass").And.Contain("program multi_redir").And.Contain("processed"));
    }

    [Test]
    public void OneProgramByNameWithTheFullLog()
    {
        var (code, output, _) = Run("verify", Corpus("redir_port.o"), "--program", "redir_port", "--log", "2");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("R1=ctx()"));
    }

    [Test]
    public void AnUnknownProgramIsBadInput()
    {
        var (code, _, err) = Run("verify", Corpus("redir_port.o"), "--program", "nope");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.Contain("no program named 'nope' (programs: redir_port)"));
    }

    [Test]
    public void AnAssemblyErrorNamesTheFile()
    {
        var (code, _, err) = Run("verify", Corpus("redir_port.c"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("redir_port.c: line 1: unknown mnemonic"));
    }
}
