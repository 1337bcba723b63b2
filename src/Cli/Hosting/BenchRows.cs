using System.Text.Json;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// The per-engine part of a timing report's JSON (<c>bpfjit bench --json</c> and perf's <c>case --json</c> share
/// its shape). Internal and compiled into perf/Baselines too, like <see cref="Measure"/>.
/// </summary>
internal static class BenchRows
{
    /// <summary>Writes <c>"engines": [{engine, nsPerRun, runs}...]</c> and <c>"ratio"</c> into the open object.</summary>
    public static void Write(Utf8JsonWriter w, IEnumerable<(string Engine, double Ns, long Runs)> rows, double ratio)
    {
        w.WriteStartArray("engines");
        foreach (var (engine, ns, runs) in rows)
        {
            w.WriteStartObject();
            w.WriteString("engine", engine);
            w.WriteNumber("nsPerRun", Math.Round(ns, 2));
            w.WriteNumber("runs", runs);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNumber("ratio", Math.Round(ratio, 2));
    }
}
