using System.Text.Json;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Cli;

/// <summary>Runs the bpfjit command line in-process and finds the repository's files.</summary>
static class CliHarness
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs with --json appended, asserts exit 0 and parses stdout.</summary>
    public static JsonElement Json(params string[] args)
    {
        var (code, output, err) = Run([.. args, "--json"]);
        Assert.That(code, Is.EqualTo(0), err + output);
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.Clone();
    }

    public static string Repo(params string[] parts) => Path.Combine([Paths.RepoRoot, .. parts]);

    public static string Temp(string extension, string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"bpfjit-{Guid.NewGuid():n}{extension}");
        File.WriteAllText(path, text);
        return path;
    }

    public static string Temp(string extension, byte[] bytes)
    {
        string path = Path.Combine(Path.GetTempPath(), $"bpfjit-{Guid.NewGuid():n}{extension}");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Bad input: exit 2, exactly one line on stderr containing every fragment, no stack trace.</summary>
    public static void AssertBadInput((int Code, string Out, string Err) r, params string[] fragments)
    {
        Assert.That(r.Code, Is.EqualTo(2), r.Err + r.Out);
        var lines = r.Err.Trim().Split('\n');
        Assert.That(lines, Has.Length.EqualTo(1), r.Err);
        foreach (var f in fragments) Assert.That(lines[0], Does.Contain(f));
        Assert.That(r.Err, Does.Not.Contain("   at "));
    }
}
