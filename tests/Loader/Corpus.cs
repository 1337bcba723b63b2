using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>Locates the SK_LOOKUP corpus: $BPFJIT_CORPUS_DIR, else tests/programs in the repository.</summary>
static class Corpus
{
    /// <summary>The repository root (found by walking up from the test assembly to BpfJit.sln).</summary>
    public static string RepoRoot => Support.Paths.RepoRoot;

    /// <summary>Where the C sources are (always the repository's tests/programs).</summary>
    public static string SourceDirectory => Path.Combine(RepoRoot, "tests", "programs");

    /// <summary>Where the compiled objects are.</summary>
    public static string Directory
    {
        get
        {
            string? env = Environment.GetEnvironmentVariable("BPFJIT_CORPUS_DIR");
            return string.IsNullOrEmpty(env) ? SourceDirectory : Path.GetFullPath(env);
        }
    }

    /// <summary>The corpus program names (one per C source).</summary>
    public static IEnumerable<string> Names() =>
        System.IO.Directory.GetFiles(SourceDirectory, "*.c").Select(p => Path.GetFileNameWithoutExtension(p)).Order();

    public static string ObjectPath(string name)
    {
        string path = Path.Combine(Directory, name + ".o");
        if (!File.Exists(path)) Assert.Fail($"corpus object {path} is missing (run tests/programs/build.sh)");
        return path;
    }

    public static CollectionSpec Load(string name) => ObjectFile.Load(ObjectPath(name));
}
