using System.Diagnostics;
using System.Text.RegularExpressions;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Docs;

/// <summary>
/// Every C# block in the documentation works as written. A block marked <c>&lt;!-- snippet: PATH#REGION --&gt;</c>
/// is a region of a file the build compiles (<see cref="SnippetTests"/> checks it is current); every other block is a
/// whole program: it is compiled against the packages <c>dotnet pack</c> makes, in a project made by
/// <c>dotnet new console</c>, and run in a folder holding the bundled objects (<c>tests/programs/*.o</c>), where it
/// must exit 0. The packages are installed by the steps docs/packages.md gives, run as written except for three
/// substitutions that keep the machine untouched: a scratch folder for <c>~/bpfjit-packages</c>, <c>--tool-path</c>
/// for <c>-g</c>, and a scratch NuGet config (and package cache) for the user's.
/// </summary>
[TestFixture, NonParallelizable]
public partial class DocsCSharpTests
{
    [GeneratedRegex(@"(?<marker><!-- snippet: [^>]*-->\r?\n)?```(?:csharp|cs|c#)\r?\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    [GeneratedRegex(@"## Installing\n.*?```sh\n(?<steps>.*?)```", RegexOptions.Singleline)]
    private static partial Regex InstallSteps();

    static IEnumerable<string> Documents() =>
        Directory.GetFiles(Path.Combine(Paths.RepoRoot, "docs"), "*.md")
            .Append(Path.Combine(Paths.RepoRoot, "README.md"))
            .Concat(Directory.GetDirectories(Path.Combine(Paths.RepoRoot, "examples"))
                .Select(d => Path.Combine(d, "README.md")).Where(File.Exists))
            .Order(StringComparer.Ordinal);

    /// <summary>The whole-program blocks: (document, line, code).</summary>
    public static IEnumerable<TestCaseData> Programs()
    {
        foreach (string doc in Documents())
        {
            string text = File.ReadAllText(doc).ReplaceLineEndings("\n");
            string rel = Path.GetRelativePath(Paths.RepoRoot, doc);
            foreach (Match m in CSharpBlock().Matches(text))
            {
                if (m.Groups["marker"].Success) continue;
                int line = text.AsSpan(0, m.Index).Count('\n') + 1;
                yield return new TestCaseData(rel, line, m.Groups["code"].Value).SetName($"{rel}:{line} compiles and runs");
            }
        }
    }

    string _work = "";
    string _app = "", _run = "", _tools = "";
    Dictionary<string, string> _env = [];

    [OneTimeSetUp]
    public void InstallThePackagesAsTheDocsSay()
    {
        _work = Directory.CreateTempSubdirectory("bpfjit-docs-").FullName;
        _app = Path.Combine(_work, "app");
        _run = Path.Combine(_work, "run");
        _tools = Path.Combine(_work, "tools");
        Directory.CreateDirectory(_run);
        foreach (string o in Directory.GetFiles(Path.Combine(Paths.RepoRoot, "tests", "programs"), "*.o"))
            File.Copy(o, Path.Combine(_run, Path.GetFileName(o)));
        string nugetConfig = Path.Combine(_work, "nuget.config");
        File.WriteAllText(nugetConfig, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <packageSources>\n  </packageSources>\n</configuration>\n");
        // A package cache of its own: NuGet keeps the first package it saw of a version, and every build is 0.1.0.
        _env = new()
        {
            ["NUGET_PACKAGES"] = Path.Combine(_work, "nuget-packages"),
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
        };

        Run("dotnet", ["new", "console", "-o", _app], _work);
        string text = File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "packages.md")).ReplaceLineEndings("\n");
        var steps = InstallSteps().Match(text);
        Assert.That(steps.Success, "docs/packages.md has an '## Installing' section with a sh block");
        // The tests run on the build they come from: pack it as it is, in its configuration, without building again.
        string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        int ran = 0;
        foreach (string raw in steps.Groups["steps"].Value.Split('\n'))
        {
            string step = Regex.Replace(raw, @"\s+#.*$", "").Trim();
            if (step.Length == 0) continue;
            step = step.Replace("~/bpfjit-packages", Path.Combine(_work, "packages"));
            string cwd = _app;
            if (step.StartsWith("dotnet pack", StringComparison.Ordinal))
            {
                step = step.Replace("-c Release", $"-c {configuration} --no-build");
                cwd = Paths.RepoRoot;
            }
            step = step.Replace(" -g ", $" --tool-path {_tools} ");
            if (step.StartsWith("dotnet nuget add source", StringComparison.Ordinal)) step += $" --configfile {nugetConfig}";
            Run("bash", ["-c", step], cwd);
            ran++;
        }
        Assert.That(ran, Is.EqualTo(4), "the four install steps");
    }

    [OneTimeTearDown]
    public void Clean()
    {
        if (_work.Length > 0) try { Directory.Delete(_work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Test]
    public void TheInstalledToolRuns()
    {
        var (code, output) = Run(Path.Combine(_tools, "bpfjit"), ["demo", "--seconds", "0", "--il-lines", "0"], _run, check: false);
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("as the scenario expects"));
    }

    [Test]
    public void TheToolPackageShipsNoBenchmarkCode()
    {
        // The suite's cases and baselines run from perf/ (issue 22): the tool's package carries none of it.
        string[] packages = Directory.GetFiles(Path.Combine(_work, "packages"), "bpfjit.*.nupkg");
        Assert.That(packages, Is.Not.Empty, "the tool's package was packed");
        foreach (string package in packages)
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(package);
            var entries = zip.Entries.Select(e => e.FullName).ToList();
            Assert.That(entries, Has.Some.EndsWith("/bpfjit.dll"), package);
            Assert.That(entries.Where(e => e.Contains("Baselines", StringComparison.OrdinalIgnoreCase)
                || e.Contains("BenchmarkDotNet", StringComparison.OrdinalIgnoreCase)), Is.Empty, package);
        }
    }

    [Test]
    public void TheDocumentsHaveWholePrograms() =>
        Assert.That(Programs().Count(), Is.GreaterThanOrEqualTo(4), "docs/packages.md, loader.md, sk-lookup-runtime.md and verifier.md show whole programs");

    [TestCaseSource(nameof(Programs))]
    public void TheBlockCompilesAndRuns(string document, int line, string code)
    {
        File.WriteAllText(Path.Combine(_app, "Program.cs"), code);
        var (built, buildOutput) = Run("dotnet", ["build", _app, "-c", "Release", "--no-restore", "-v", "q", "-nologo"], _app, check: false);
        Assert.That(built, Is.EqualTo(0), $"{document}:{line} does not compile as written:\n{buildOutput}");
        var (exit, output) = Run("dotnet", [Path.Combine(_app, "bin", "Release", "net10.0", "app.dll")], _run, check: false);
        Assert.That(exit, Is.EqualTo(0), $"{document}:{line} exits {exit}:\n{output}");
    }

    (int Code, string Output) Run(string file, string[] args, string cwd, bool check = true)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var (k, v) in _env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); Assert.Fail($"{file} {string.Join(' ', args)}: no exit after 5 minutes"); }
        string output = stdout + stderr.Result;
        if (check) Assert.That(p.ExitCode, Is.EqualTo(0), $"{file} {string.Join(' ', args)} (in {cwd}):\n{output}");
        return (p.ExitCode, output);
    }
}
