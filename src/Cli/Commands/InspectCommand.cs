using System.Text.Json;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit inspect OBJECT [--json]</c>: lists an object's programs and maps.</summary>
public static class InspectCommand
{
    /// <summary>The verb's description, for <see cref="Cli"/>.</summary>
    public static CommandInfo Info { get; } = new("inspect", "list the programs and maps of an eBPF object file", """
        usage: bpfjit inspect OBJECT [--json]

        Loads an eBPF ELF object (clang -target bpf) without running anything and lists its programs
        (name, section, program type, attach type, instruction count, tag, license, loader notes) and
        maps (name, type, key size, value size, max entries, flags). --json prints the same as JSON.
        TAG is the tag Linux computes at load for the same instructions (what 'bpftool prog show' prints:
        SHA-256 of the slots with map references' immediates zeroed, first 8 bytes; 6.18 and later), so a
        program here can be matched with the one the kernel runs.
        Exit code 0, or 2 with one line on stderr naming the file, section and offset of a bad object.

        examples:
          bpfjit inspect tests/programs/dispatcher.o
          bpfjit inspect tests/programs/multi_prog.o --json
        """, Run) { Operands = "OBJECT", Options = [Opt.Json()] };

    /// <summary>Runs the command; returns 0 on success and 2 on bad usage or a bad object.</summary>
    public static int Run(Args a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Positional.Count == 0) throw new UsageException("no OBJECT given");
        if (a.Positional.Count > 1) throw new UsageException($"unexpected argument '{a.Positional[1]}'");
        var spec = ObjectFile.Load(a.Positional[0]);
        if (a.Has("--json")) WriteJson(spec, stdout);
        else WriteText(spec, stdout);
        return Cli.Ok;
    }

    static void WriteText(CollectionSpec spec, TextWriter o)
    {
        o.WriteLine($"file: {spec.FileName}");
        o.WriteLine($"license: {spec.License}");
        if (spec.KernelVersion is uint v) o.WriteLine($"kernel version: 0x{v:x}");
        o.WriteLine($"programs: {spec.Programs.Count}");
        var rows = new List<string[]> { new[] { "NAME", "SECTION", "TYPE", "ATTACH", "INSNS", "TAG", "LICENSE" } };
        rows.AddRange(spec.Programs.Select(p => new[]
        {
            p.Name, p.SectionName, TypeText(p), p.AttachType?.ToString() ?? "-", p.Instructions.Length.ToString(), ProgramTag.Compute(p.Instructions), p.License,
        }));
        WriteTable(o, rows);
        foreach (var p in spec.Programs)
            foreach (var note in p.Notes) o.WriteLine($"  note: {p.Name}: {note}");
        o.WriteLine($"maps: {spec.Maps.Count}");
        var mapRows = new List<string[]> { new[] { "NAME", "TYPE", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS" } };
        mapRows.AddRange(spec.Maps.Select(m => new[]
        {
            m.Name, m.Type.ToString(), m.KeySize.ToString(), m.ValueSize.ToString(), m.MaxEntries.ToString(), $"0x{m.Flags:x}",
        }));
        WriteTable(o, mapRows);
    }

    static string TypeText(ProgramSpec p) => p.IsSupported ? p.Type.ToString() : $"{p.Type} (unsupported)";

    static void WriteTable(TextWriter o, List<string[]> rows)
    {
        int cols = rows[0].Length;
        var widths = Enumerable.Range(0, cols).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (var r in rows)
            o.WriteLine("  " + string.Join("  ", r.Select((cell, c) => c == cols - 1 ? cell : cell.PadRight(widths[c]))).TrimEnd());
    }

    static void WriteJson(CollectionSpec spec, TextWriter o)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("file", spec.FileName);
            w.WriteString("license", spec.License);
            if (spec.KernelVersion is uint v) w.WriteNumber("kernelVersion", v);
            else w.WriteNull("kernelVersion");
            w.WriteStartArray("programs");
            foreach (var p in spec.Programs)
            {
                w.WriteStartObject();
                w.WriteString("name", p.Name);
                w.WriteString("section", p.SectionName);
                w.WriteString("type", p.Type.ToString());
                w.WriteNumber("typeId", (uint)p.Type);
                w.WriteBoolean("supported", p.IsSupported);
                if (p.AttachType is { } a) w.WriteString("attachType", a.ToString());
                else w.WriteNull("attachType");
                w.WriteNumber("instructions", p.Instructions.Length);
                w.WriteString("tag", ProgramTag.Compute(p.Instructions));
                w.WriteString("license", p.License);
                w.WriteStartArray("maps");
                foreach (var name in p.MapReferences.Select(r => r.MapName).Distinct()) w.WriteStringValue(name);
                w.WriteEndArray();
                w.WriteStartArray("kernelFunctions");
                foreach (var name in p.KernelFunctions) w.WriteStringValue(name);
                w.WriteEndArray();
                w.WriteStartArray("notes");
                foreach (var n in p.Notes) w.WriteStringValue(n);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("maps");
            foreach (var m in spec.Maps)
            {
                w.WriteStartObject();
                w.WriteString("name", m.Name);
                w.WriteString("type", m.Type.ToString());
                w.WriteNumber("typeId", (uint)m.Type);
                w.WriteNumber("keySize", m.KeySize);
                w.WriteNumber("valueSize", m.ValueSize);
                w.WriteNumber("maxEntries", m.MaxEntries);
                w.WriteNumber("flags", m.Flags);
                w.WriteString("pinning", m.Pinning.ToString());
                w.WriteString("source", m.Source.ToString());
                w.WriteBoolean("frozen", m.Frozen);
                if (m.InnerMap is { } inner)
                {
                    // A map-in-map: the inner map every slot must match, and the maps the object puts in its slots.
                    w.WriteStartObject("innerMap");
                    w.WriteString("type", inner.Type.ToString());
                    w.WriteNumber("keySize", inner.KeySize);
                    w.WriteNumber("valueSize", inner.ValueSize);
                    w.WriteNumber("maxEntries", inner.MaxEntries);
                    w.WriteEndObject();
                    w.WriteStartObject("initialInnerMaps");
                    foreach (var (slot, name) in m.InitialInnerMaps.OrderBy(e => e.Key))
                        w.WriteString(slot.ToString(System.Globalization.CultureInfo.InvariantCulture), name);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }
}
