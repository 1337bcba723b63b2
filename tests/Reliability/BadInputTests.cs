using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Scenarios;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// tests/bad-input: malformed objects, programs and scenario files, each beside a <c>.expected</c>
/// file holding (a substring of) the one-line error it must produce. Each goes through the library
/// (a typed <see cref="BpfException"/> whose message contains the text) and through the tool, called
/// in-process like tests/Cli does (exit 2, exactly one line on stderr, containing the text).
/// </summary>
[TestFixture]
public class BadInputTests
{
    static string Root => Path.Combine(Paths.RepoRoot, "tests", "bad-input");

    static IEnumerable<TestCaseData> Files() =>
        Directory.GetFiles(Root, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetExtension(f) is ".o" or ".bin" or ".data" or ".json")
            .Order(StringComparer.Ordinal)
            .Select(f => new TestCaseData(Path.GetRelativePath(Root, f)).SetName($"bad input {Path.GetRelativePath(Root, f)}"));

    static string Expected(string file)
    {
        string path = Path.ChangeExtension(Path.Combine(Root, file), ".expected");
        Assert.That(File.Exists(path), $"{path} is missing");
        return File.ReadAllText(path).Trim();
    }

    /// <summary>The library call that reads <paramref name="path"/> as what its extension says.</summary>
    static void Load(string path)
    {
        switch (Path.GetExtension(path))
        {
            case ".o":
                ObjectFile.Load(path);
                break;
            case ".bin":
                Decoder.Decode(File.ReadAllBytes(path));
                break;
            case ".data":
                ConformanceFile.Load(path);
                break;
            default:
                ScenarioBuilder.Build(path, InterpreterEngine.Instance).Dispose();
                break;
        }
    }

    /// <summary>The tool's verb for <paramref name="path"/>.</summary>
    static string[] Command(string path) => Path.GetExtension(path) switch
    {
        ".o" => ["inspect", path],
        ".json" => ["scenario", path],
        _ => ["verify", path],
    };

    [TestCaseSource(nameof(Files))]
    public void TheLibraryThrowsATypedErrorWithTheExpectedMessage(string file)
    {
        string path = Path.Combine(Root, file), expected = Expected(file);
        var e = Assert.Catch<BpfException>(() => Load(path), $"{file} must be refused")!;
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.Message, Does.Not.Contain("\n"), "one line");
    }

    [TestCaseSource(nameof(Files))]
    public void TheToolExitsWith2AndOneLineOnStderr(string file)
    {
        string path = Path.Combine(Root, file), expected = Expected(file);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(Command(path), stdout, stderr);
        string err = stderr.ToString();
        Assert.That(code, Is.EqualTo(2), $"stdout: {stdout}\nstderr: {err}");
        Assert.That(err.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), err);
        Assert.That(err, Does.Contain(expected));
        Assert.That(err, Does.Contain(Path.GetFileName(file)), "the message names the file");
    }
}
