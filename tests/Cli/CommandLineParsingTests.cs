using System.Diagnostics;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary>
/// The command line on System.CommandLine: POSIX forms of options, the one-line usage errors it keeps, the help
/// generated from each verb's declarations, and shell completion through the [suggest] directive and the script.
/// </summary>
public class CommandLineParsingTests
{
    static string Object => Repo("tests", "programs", "redir_port.o");

    [Test]
    public void OptionValueAfterAnEqualsSignOrTheNextWordIsTheSame()
    {
        var spaced = Run("disasm", Object, "--program", "redir_port");
        var equals = Run("disasm", "--program=redir_port", Object);
        Assert.That(spaced.Code, Is.Zero, spaced.Err);
        Assert.That(equals, Is.EqualTo(spaced));
    }

    [Test]
    public void ShortAliasIsTheLongOption()
    {
        var longForm = Run("disasm", Object, "--source");
        Assert.That(longForm.Code, Is.Zero, longForm.Err);
        Assert.That(Run("disasm", "-S", Object), Is.EqualTo(longForm));
        // Short options bundle (POSIX): -Sh is -S -h, and help wins.
        Assert.That(Run("disasm", Object, "-Sh").Out, Does.StartWith("usage: bpfjit disasm"));
    }

    [Test]
    public void AnOptionWithoutItsValueIsAUsageError() =>
        AssertBadInput(Run("run", Object, "--program"), "bpfjit run: option --program needs a value", "try 'bpfjit run --help'");

    [Test]
    public void AfterDoubleDashADashWordIsAnOperand()
    {
        AssertBadInput(Run("disasm", "--frobnicate"), "bpfjit disasm: unknown option '--frobnicate'");
        AssertBadInput(Run("disasm", "--", "--frobnicate"), "bpfjit disasm: --frobnicate: no such file");
    }

    [Test]
    public void AnUnknownOptionWithJsonIsTheJsonError()
    {
        var (code, output, _) = Run("verify", Object, "--json", "--frob");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(output, Does.Contain("\"error\": \"unknown option '--frob'"));
    }

    [Test]
    public void HelpWinsOverABadLine()
    {
        var (code, output, _) = Run("run", "--frobnicate", "--help");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.StartWith("usage: bpfjit run"));
    }

    public static IEnumerable<string> Verbs() => BpfJit.Cli.Cli.Commands.Select(c => c.Name);

    [TestCaseSource(nameof(Verbs))]
    public void HelpTablesEveryDeclaredOptionBeforeTheExamples(string verb)
    {
        var info = BpfJit.Cli.Cli.Commands.Single(c => c.Name == verb);
        var (code, output, _) = Run(verb, "--help");
        Assert.That(code, Is.Zero);
        int table = output.IndexOf("\noptions:\n", StringComparison.Ordinal);
        Assert.That(table, Is.GreaterThan(0), output);
        string options = output[table..];
        int examples = options.IndexOf("\nexample", StringComparison.Ordinal);
        if (examples > 0) options = options[..examples];
        foreach (var option in info.Options.Where(o => !o.Hidden))
            Assert.That(options, Does.Contain($"  {option.Name}").Or.Contain($", {option.Name}"), option.Name);
        Assert.That(options, Does.Contain("-h, --help"));
    }

    /// <summary>What the shell gets from <c>bpfjit [suggest:N] LINE</c>: one completion a line.</summary>
    static string[] Suggest(string line)
    {
        var (code, output, err) = Run($"[suggest:{line.Length}]", line);
        Assert.That(code, Is.Zero, err);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    [Test]
    public void SuggestCompletesVerbsOptionsAndChoices()
    {
        Assert.That(Suggest("di"), Is.EqualTo(new[] { "disasm" }));
        Assert.That(Suggest("dump x.o --n"), Is.EquivalentTo(new[] { "--native", "--no-zero-stack" }));
        Assert.That(Suggest("run x.o --engine "), Is.EquivalentTo(new[] { "interpreter", "jit" }));
        Assert.That(Suggest("verify x.o --log "), Is.EqualTo(new[] { "1", "2", "4", "5", "6" }));
        Assert.That(Suggest("bench x.o --c"), Is.EqualTo(new[] { "--cgroup" }), "a retired option (--case) is not offered");
    }

    [Test]
    public void CompletionPrintsTheScriptOrAUsageError()
    {
        var (code, output, _) = Run("completion", "bash");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("complete -o filenames -F _bpfjit_complete bpfjit"));
        Assert.That(Run("completion", "zsh").Out, Does.Contain("compdef _bpfjit bpfjit"));
        AssertBadInput(Run("completion", "fish"), "bpfjit completion: no completion script for 'fish'");
    }

    /// <summary>
    /// The bash script as bash runs it: sourced, with the tool as built beside the tests, the completion function
    /// fills COMPREPLY for a line typed up to the cursor (the variables bash sets when Tab is pressed).
    /// </summary>
    [TestCase("bpfjit ver", "verify")]
    [TestCase("bpfjit run x.o --engine j", "jit")]
    [TestCase("bpfjit disasm --li", "--linum")]
    public void BashScriptCompletesThroughTheTool(string typed, string expected)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "bpfjit.dll");
        string script = Temp(".bash", Run("completion", "bash").Out);
        string[] words = typed.Split(' ');
        string bash = $$"""
            bpfjit() { dotnet '{{dll}}' "$@"; }
            source '{{script}}'
            COMP_LINE='{{typed}}'; COMP_POINT=${#COMP_LINE}
            COMP_WORDS=({{string.Join(' ', words.Select(w => $"'{w}'"))}}); COMP_CWORD={{words.Length - 1}}
            _bpfjit_complete
            printf '%s\n' "${COMPREPLY[@]}"
            """;
        var psi = new ProcessStartInfo("bash", ["-c", bash]) { RedirectStandardOutput = true, RedirectStandardError = true };
        try
        {
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.That(p.ExitCode, Is.Zero, err);
            Assert.That(output.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { expected }), err);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("no bash on this machine");
        }
        finally
        {
            File.Delete(script);
        }
    }
}
