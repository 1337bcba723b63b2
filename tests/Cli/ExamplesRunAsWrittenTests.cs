using System.Diagnostics;
using System.Text.RegularExpressions;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Cli;

/// <summary>
/// Every example command in every verb's <c>--help</c> and in the documentation runs as written from a
/// clone: each one is run by bash, with <c>bpfjit</c> on PATH (the built tool), from a scratch copy of
/// the clone's layout (so examples that write files write them there), and must exit 0, or 1 where the
/// example shows a rejection or a fault (a negative result), never 2 (bad input: a missing file, a stale
/// option) or a crash. Examples that name <c>../shared</c> (the public bpf_conformance suite and the
/// micro-benchmarks beside the clone, README "Tests") are skipped with the reason when it is absent.
/// </summary>
[NonParallelizable]
public partial class ExamplesRunAsWrittenTests
{
    const string DocPrompt = "$ dotnet run --project src/Cli -c Release -- ";

    [GeneratedRegex(@"```[\w-]*\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex Fence();

    static string? s_sandbox;

    /// <summary>The verbs whose help is read (the tool's own list, from <c>bpfjit --help</c>).</summary>
    static IEnumerable<string> Verbs()
    {
        var (_, output, _) = CliHarness.Run("--help");
        foreach (string line in output.ReplaceLineEndings("\n").Split('\n'))
        {
            var m = Regex.Match(line, @"^  ([a-z]+)\s{2,}");
            if (m.Success) yield return m.Groups[1].Value;
        }
    }

    /// <summary>Example lines of one verb's help: the lines after <c>examples:</c> that start with <c>bpfjit </c>.</summary>
    public static IEnumerable<string> HelpExamples(string verb)
    {
        var (_, output, _) = CliHarness.Run(verb, "--help");
        bool inExamples = false;
        foreach (string raw in output.ReplaceLineEndings("\n").Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith("examples:", StringComparison.Ordinal)) { inExamples = true; continue; }
            if (!inExamples) continue;
            if (line.StartsWith("bpfjit ", StringComparison.Ordinal) || line.Contains("| bpfjit ", StringComparison.Ordinal))
                yield return line;
            else if (line.Length > 0 && !line.StartsWith('#') && char.IsLetter(line[0]) && line.EndsWith(':'))
                inExamples = false; // the next section of the help
        }
    }

    /// <summary>
    /// Commands in fenced blocks of the README and docs/: <c>$ bpfjit ...</c>, <c>$ dotnet run --project src/Cli
    /// -c Release -- ...</c>, and bare <c>bpfjit ...</c> lines that are not synopses (a synopsis has <c>[</c>).
    /// </summary>
    public static IEnumerable<(string Document, string Command)> DocExamples()
    {
        var documents = Directory.GetFiles(Path.Combine(Paths.RepoRoot, "docs"), "*.md")
            .Append(Path.Combine(Paths.RepoRoot, "README.md")).Order(StringComparer.Ordinal);
        foreach (string path in documents)
        {
            string doc = Path.GetRelativePath(Paths.RepoRoot, path).Replace('\\', '/');
            string text = File.ReadAllText(path).ReplaceLineEndings("\n");
            foreach (Match m in Fence().Matches(text))
            {
                foreach (string raw in m.Groups["body"].Value.Split('\n'))
                {
                    string line = raw.Trim();
                    string? command = null;
                    if (line.StartsWith(DocPrompt, StringComparison.Ordinal)) command = "bpfjit " + line[DocPrompt.Length..];
                    else if (line.StartsWith("$ bpfjit ", StringComparison.Ordinal)) command = line[2..];
                    else if (line.StartsWith("bpfjit ", StringComparison.Ordinal) && !line.Contains('[', StringComparison.Ordinal)) command = line;
                    if (command != null) yield return (doc, StripComment(command));
                }
            }
        }
    }

    static string StripComment(string command)
    {
        int hash = command.IndexOf("  #", StringComparison.Ordinal);
        return (hash < 0 ? command : command[..hash]).TrimEnd();
    }

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (string verb in Verbs())
            foreach (string example in HelpExamples(verb))
                yield return new TestCaseData($"bpfjit {verb} --help", example).SetName($"help {verb}: {example}");
        foreach (var (doc, command) in DocExamples())
            yield return new TestCaseData(doc, command).SetName($"{doc}: {command}");
    }

    [Test]
    public void EveryVerbShowsExamplesAndTheDocsHaveSome()
    {
        foreach (string verb in Verbs())
            Assert.That(HelpExamples(verb), Is.Not.Empty, $"bpfjit {verb} --help shows no example");
        Assert.That(DocExamples().Count(), Is.GreaterThan(20));
    }

    [TestCaseSource(nameof(Cases))]
    public void RunsAsWritten(string where, string command)
    {
        string? bash = Which("bash");
        if (bash == null || OperatingSystem.IsWindows()) Assert.Ignore("the examples are shell commands: bash is not on PATH");
        string shared = Path.GetFullPath(Path.Combine(Paths.RepoRoot, "..", "shared"));
        if (command.Contains("../shared", StringComparison.Ordinal) && !Directory.Exists(shared))
            Assert.Ignore($"{where}: needs the bpf_conformance suite beside the clone as ../shared (README, \"Tests\"), absent here");
        if (Regex.IsMatch(command, @"-o \S+\.svg") && Which("dot") == null)
            Assert.Ignore($"{where}: draws SVG with Graphviz 'dot', not on PATH (apt-get install graphviz)");

        string clone = Sandbox(shared);
        // Files an example writes under /tmp go to the sandbox's own tmp: another user's (or run's) /tmp/x.dll
        // must not make the example fail here, nor this run leave files in the machine's /tmp.
        string tmp = Path.Combine(s_sandbox!, "tmp");
        Directory.CreateDirectory(tmp);
        command = Regex.Replace(command, @"(?<![\w.])/tmp/", tmp + "/");
        var psi = new ProcessStartInfo(bash, ["-c", "set -o pipefail; " + command])
        {
            WorkingDirectory = clone,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["PATH"] = Path.Combine(s_sandbox!, "bin") + Path.PathSeparator + Environment.GetEnvironmentVariable("PATH");
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{where}: '{command}' did not finish in 2 minutes");
        }
        string err = stderr.Result;
        Assert.That(process.ExitCode, Is.AnyOf(0, 1), $"{where}: '{command}' exited {process.ExitCode}\n{err}\n{Tail(stdout.Result)}");
        Assert.That(err, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"), $"{where}: '{command}'");
    }

    static string Tail(string s) => s.Length > 2000 ? s[^2000..] : s;

    /// <summary>
    /// A scratch directory laid out like a clone beside ../shared: <c>clone/</c> holds links to the
    /// repository's top-level entries (examples write their outputs into <c>clone/</c>, not into the
    /// repository), <c>shared</c> links to the real ../shared when there is one, and <c>bin/bpfjit</c>
    /// runs the tool built beside the tests.
    /// </summary>
    static string Sandbox(string shared)
    {
        if (s_sandbox != null) return Path.Combine(s_sandbox, "clone");
        string root = Path.Combine(Path.GetTempPath(), $"bpfjit-examples-{Guid.NewGuid():n}");
        string clone = Path.Combine(root, "clone");
        Directory.CreateDirectory(clone);
        foreach (string entry in Directory.EnumerateFileSystemEntries(Paths.RepoRoot))
        {
            string name = Path.GetFileName(entry);
            if (name is ".git" or "out") continue;
            File.CreateSymbolicLink(Path.Combine(clone, name), entry);
        }
        if (Directory.Exists(shared)) Directory.CreateSymbolicLink(Path.Combine(root, "shared"), shared);
        string bin = Path.Combine(root, "bin");
        Directory.CreateDirectory(bin);
        string tool = Path.Combine(bin, "bpfjit");
        File.WriteAllText(tool, $"#!/bin/sh\nexec dotnet \"{Path.Combine(AppContext.BaseDirectory, "bpfjit.dll")}\" \"$@\"\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        s_sandbox = root;
        return clone;
    }

    [OneTimeTearDown]
    public void RemoveSandbox()
    {
        if (s_sandbox == null) return;
        try { Directory.Delete(s_sandbox, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        s_sandbox = null;
    }

    static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
