namespace BpfJit.Tests.Support;

/// <summary>Where the repository and the shared references are, found from the test assembly.</summary>
public static class Paths
{
    /// <summary>The repository root (the folder holding BpfJit.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>../shared beside the repository, or null in a clone that has none.</summary>
    public static string? Shared
    {
        get
        {
            string p = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
            return Directory.Exists(p) ? p : null;
        }
    }

    /// <summary>The conformance folder, or marks the test ignored (visibly) when ../shared is absent.</summary>
    public static string RequireShared(string sub)
    {
        string? shared = Shared;
        string? dir = shared == null ? null : Path.Combine(shared, sub);
        if (dir == null || !Directory.Exists(dir))
            Assert.Ignore($"../shared/{sub} is not present beside the repository: skipped");
        return dir!;
    }

    static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "BpfJit.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("BpfJit.sln not found above " + AppContext.BaseDirectory);
    }
}
