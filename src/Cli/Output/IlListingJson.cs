using System.Globalization;
using System.Text.Json;

namespace BpfJit.Cli.Output;

/// <summary>
/// The IL listing (<c>CompiledProgram.GetIlListing</c>) as JSON: its <c>//</c> header lines, then one
/// block per <c>; N: instruction</c> comment with the IL lines under it. Any other <c>;</c> line (a
/// prologue, a shared return, a note) opens a block with <c>slot</c> null.
/// </summary>
public static class IlListingJson
{
    /// <summary>Writes <c>"il": {"header": [...], "blocks": [{"slot": 5, "comment": "r0 = ...", "il": ["IL_0000: ldarg.0"]}]}</c>.</summary>
    public static void Write(Utf8JsonWriter w, string listing)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(listing);
        w.WriteStartObject("il");
        var lines = listing.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
        w.WriteStrings("header", lines.TakeWhile(l => l.StartsWith("//", StringComparison.Ordinal)).Select(l => l[2..].Trim()));
        w.WriteStartArray("blocks");
        bool open = false;
        foreach (var line in lines.SkipWhile(l => l.StartsWith("//", StringComparison.Ordinal)))
        {
            if (line.StartsWith(';'))
            {
                if (open) { w.WriteEndArray(); w.WriteEndObject(); }
                w.WriteStartObject();
                string text = line[1..].Trim();
                int colon = text.IndexOf(':');
                if (colon > 0 && int.TryParse(text[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out int slot))
                {
                    w.WriteNumber("slot", slot);
                    w.WriteString("comment", text[(colon + 1)..].Trim());
                }
                else
                {
                    w.WriteNull("slot");
                    w.WriteString("comment", text);
                }
                w.WriteStartArray("il");
                open = true;
            }
            else if (open) w.WriteStringValue(line.Trim());
        }
        if (open) { w.WriteEndArray(); w.WriteEndObject(); }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
