using BenchmarkDotNet.Running;

namespace BpfJit.Perf;

/// <summary>Runs the benchmarks: <c>dotnet run -c Release --project perf -- --filter '*'</c>.</summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
