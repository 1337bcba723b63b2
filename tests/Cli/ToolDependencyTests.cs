using System.Reflection;
using System.Text.Json;

namespace BpfJit.Tests.Cli;

/// <summary>
/// The <c>bpfjit</c> tool references nothing of perf/ (issue 22): neither its assembly nor its dependency manifest
/// (what <c>dotnet pack</c> puts in the tool's package) names the benchmark suite's library or BenchmarkDotNet. The
/// package itself is checked by <c>DocsCSharpTests.TheToolPackageShipsNoBenchmarkCode</c>, which packs it anyway.
/// </summary>
public sealed class ToolDependencyTests
{
    static readonly string[] Benchmark = ["BpfJit.Baselines", "BpfJit.Perf", "BenchmarkDotNet"];

    [Test]
    public void TheToolsAssemblyReferencesNoBenchmarkCode()
    {
        var names = typeof(BpfJit.Cli.UsageException).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.That(names, Does.Contain("BpfJit.Runtime"), "the references are read");
        Assert.That(names.Intersect(Benchmark), Is.Empty);
    }

    [Test]
    public void TheToolsDependencyManifestNamesNoBenchmarkCode()
    {
        // The compiler drops references no code uses; the manifest lists every project and package the tool was built with.
        string manifest = Path.Combine(Path.GetDirectoryName(typeof(BpfJit.Cli.UsageException).Assembly.Location)!, "bpfjit.deps.json");
        using var deps = JsonDocument.Parse(File.ReadAllText(manifest));
        var libraries = deps.RootElement.GetProperty("libraries").EnumerateObject().Select(p => p.Name.Split('/')[0]).ToList();
        Assert.That(libraries, Does.Contain("BpfJit.Runtime"), "the manifest is read");
        Assert.That(libraries.Intersect(Benchmark), Is.Empty);
    }
}
