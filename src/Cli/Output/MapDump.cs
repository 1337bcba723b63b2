using System.Text;
using System.Text.Json;
using BpfJit.Runtime.Maps;

namespace BpfJit.Cli.Output;

/// <summary>
/// A map's contents as <c>bpftool map dump</c> prints them without BTF: each element's key and value in
/// hex, then <c>Found N elements</c>; <c>--json</c> as <c>bpftool -j map dump</c> (bytes as "0x.." strings).
/// </summary>
public static class MapDump
{
    /// <summary>The elements of <paramref name="map"/>, in its key order (values split per CPU for per-CPU maps).</summary>
    static List<(byte[] Key, byte[][] Values)> Elements(BpfMap map)
    {
        var elements = new List<(byte[], byte[][])>();
        bool perCpu = IsPerCpu(map.Type);
        // A per-CPU value is one 8-byte-aligned slot per CPU, as BPF_MAP_LOOKUP_ELEM returns it.
        int slot = (map.ValueSize + 7) & ~7;
        foreach (var (key, value) in map.Entries())
        {
            byte[][] values = perCpu
                ? [.. Enumerable.Range(0, value.Length / slot).Select(cpu => value.AsSpan(cpu * slot, map.ValueSize).ToArray())]
                : [value];
            elements.Add((key, values));
        }
        return elements;
    }

    static bool IsPerCpu(BpfJit.Frontend.Elf.MapType type) => type is BpfJit.Frontend.Elf.MapType.PerCpuArray or BpfJit.Frontend.Elf.MapType.PerCpuHash
        or BpfJit.Frontend.Elf.MapType.LruPerCpuHash;

    /// <summary>Writes <paramref name="map"/>'s elements in bpftool's plain layout.</summary>
    public static void WriteText(BpfMap map, TextWriter o)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(o);
        var elements = Elements(map);
        foreach (var (key, values) in elements)
        {
            if (!IsPerCpu(map.Type))
            {
                // print_entry_plain: long keys or values go on their own lines; short pairs share one.
                bool breakNames = map.KeySize > 16 || map.ValueSize > 16;
                bool singleLine = map.KeySize + map.ValueSize <= 24 && !breakNames;
                o.Write(breakNames ? "key:\n" : "key: ");
                o.Write(Hex(key));
                o.Write(singleLine ? "  " : "\n");
                o.Write(breakNames ? "value:\n" : "value: ");
                o.WriteLine(Hex(values[0]));
            }
            else
            {
                o.WriteLine("key:");
                o.WriteLine(Hex(key));
                for (int cpu = 0; cpu < values.Length; cpu++)
                    o.WriteLine($"value (CPU {cpu:00}):{(map.ValueSize > 16 ? '\n' : ' ')}{Hex(values[cpu])}");
            }
        }
        o.WriteLine($"Found {elements.Count} element{(elements.Count == 1 ? "" : "s")}");
    }

    /// <summary>
    /// bpftool's fprint_hex: bytes in two-digit hex separated by a space, two spaces after every 8th byte
    /// and a new line after every 16th.
    /// </summary>
    public static string Hex(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length * 3);
        for (int i = 0; i < bytes.Length; i++)
        {
            if (i > 0) sb.Append(i % 16 == 0 ? "\n" : i % 8 == 0 ? "  " : " ");
            sb.Append(bytes[i].ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>
    /// Writes <c>{"name", "type", "id", "elements": [{"key": ["0x01", ...], "value": [...]}]}</c>; a per-CPU map's
    /// element has <c>"values": [{"cpu": 0, "value": [...]}]</c> as bpftool's JSON has.
    /// </summary>
    public static void WriteJson(BpfMap map, Utf8JsonWriter w)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        w.WriteString("name", map.Name);
        w.WriteString("type", map.Type.ToString());
        w.WriteNumber("id", map.Id);
        w.WriteStartArray("elements");
        foreach (var (key, values) in Elements(map))
        {
            w.WriteStartObject();
            Bytes(w, "key", key);
            if (!IsPerCpu(map.Type)) Bytes(w, "value", values[0]);
            else
            {
                w.WriteStartArray("values");
                for (int cpu = 0; cpu < values.Length; cpu++)
                {
                    w.WriteStartObject();
                    w.WriteNumber("cpu", cpu);
                    Bytes(w, "value", values[cpu]);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void Bytes(Utf8JsonWriter w, string name, byte[] bytes)
    {
        w.WriteStartArray(name);
        foreach (byte b in bytes) w.WriteStringValue($"0x{b:x2}");
        w.WriteEndArray();
    }
}
