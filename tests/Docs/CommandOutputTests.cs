using System.Text.RegularExpressions;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Docs;

/// <summary>
/// Output quoted in the documentation is the tool's real, current output: a fenced block that starts
/// with <c>$ dotnet run --project src/Cli -c Release -- ARGS</c> must continue with exactly what
/// <c>bpfjit ARGS</c> prints (exit code 0, or 1 for a rejection). Blocks whose command writes a file
/// (<c>--dll</c>) are skipped.
/// </summary>
public partial class CommandOutputTests
{
    const string Prompt = "$ dotnet run --project src/Cli -c Release -- ";

    [GeneratedRegex(@"```\w*\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex Fence();

    static readonly string[] s_documents = ["docs/il-dump.md", "docs/verifier-guide.md"];

    public static IEnumerable<TestCaseData> Quotes()
    {
        foreach (string doc in s_documents)
        {
            string text = File.ReadAllText(Path.Combine(Paths.RepoRoot, doc)).ReplaceLineEndings("\n");
            foreach (Match m in Fence().Matches(text))
            {
                string body = m.Groups["body"].Value;
                if (!body.StartsWith(Prompt, StringComparison.Ordinal)) continue;
                int newline = body.IndexOf('\n');
                string command = body[Prompt.Length..newline];
                if (command.Contains("--dll", StringComparison.Ordinal)) continue;
                yield return new TestCaseData(doc, command, body[(newline + 1)..]).SetName($"{doc}: bpfjit {command}");
            }
        }
    }

    [TestCaseSource(nameof(Quotes))]
    public void TheQuotedOutputIsWhatTheToolPrints(string document, string command, string quoted)
    {
        // Repository-relative paths in the command are resolved from the repository root.
        string[] args = command.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(a => File.Exists(Path.Combine(Paths.RepoRoot, a)) ? Path.Combine(Paths.RepoRoot, a) : a).ToArray();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        Assert.That(code, Is.AnyOf(0, 1), stderr.ToString()); // 1: the verifier rejected the program, as quoted
        Assert.That(stderr.ToString(), Is.Empty);
        Assert.That(quoted.TrimEnd('\n'), Is.EqualTo(stdout.ToString().ReplaceLineEndings("\n").TrimEnd('\n')),
            $"{document}: the output quoted for 'bpfjit {command}' is out of date");
    }

    [Test]
    public void TheGuidesQuoteTheTool()
    {
        Assert.That(Quotes().Count(q => (string)q.Arguments[0]! == "docs/il-dump.md"), Is.EqualTo(3), "disasm, dump --il and dump --cs");
        Assert.That(Quotes().Count(q => (string)q.Arguments[0]! == "docs/verifier-guide.md"), Is.EqualTo(14), "one log per example");
    }
}
