using BpfJit.Frontend.Conformance;

namespace BpfJit.Perf;

/// <summary>The ../shared/bench micro-benchmark programs, found from the working directory or the binary's folder.</summary>
public static class BenchPrograms
{
    /// <summary>The program names, as benchmark parameters.</summary>
    public static IEnumerable<string> Names => ["straight", "loop_alu", "stack_loop", "helper_loop", "nocall_loop"];

    /// <summary>Loads <c>shared/bench/NAME.data</c>.</summary>
    public static ConformanceFile Load(string name) => ConformanceFile.Load(Path.Combine(SharedDir("bench"), name + ".data"));

    /// <summary>The <c>shared/SUB</c> folder beside the repository.</summary>
    public static string SharedDir(string sub)
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared", sub);
                if (Directory.Exists(candidate)) return candidate;
                candidate = Path.Combine(dir.FullName, "..", "shared", sub);
                if (File.Exists(Path.Combine(dir.FullName, "BpfJit.sln")) && Directory.Exists(candidate)) return Path.GetFullPath(candidate);
            }
        }
        throw new DirectoryNotFoundException($"shared/{sub} not found beside the repository");
    }
}
