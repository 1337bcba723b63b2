using System.Text.Json;
using BpfJit.Runtime.Maps;

namespace BpfJit.Cli.Output;

/// <summary>
/// What <c>bpfjit run</c> prints after a program's result, whatever its type: the average duration with
/// <c>--repeat</c> (as bpftool's <c>duration (average)</c>) and each map after the run with <c>--dump-maps</c>.
/// </summary>
internal static class RunTail
{
    /// <summary>Text: the duration line, then each map's name line and contents.</summary>
    public static void WriteText(TextWriter o, bool repeated, int repeat, ulong durationNs, IReadOnlyList<BpfMap> maps)
    {
        if (repeated) o.WriteLine($"duration (average): {durationNs}ns over {repeat} runs");
        foreach (var map in maps)
        {
            o.WriteLine($"map {map.Name} ({map.Type}, id {map.Id}):");
            MapDump.WriteText(map, o);
        }
    }

    /// <summary>JSON: <c>"repeat"</c> and <c>"durationNs"</c> when repeated, <c>"maps"</c> when dumped.</summary>
    public static void WriteJson(Utf8JsonWriter w, bool repeated, int repeat, ulong durationNs, bool dumped, IReadOnlyList<BpfMap> maps)
    {
        if (repeated)
        {
            w.WriteNumber("repeat", repeat);
            w.WriteNumber("durationNs", durationNs);
        }
        if (dumped)
        {
            w.WriteStartArray("maps");
            foreach (var map in maps) MapDump.WriteJson(map, w);
            w.WriteEndArray();
        }
    }
}
