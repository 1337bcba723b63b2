using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace BpfJit.Cli.Output;

/// <summary>
/// The <c>--json</c> output of every verb: one document written with <see cref="Utf8JsonWriter"/>,
/// indented, camelCase names, text unescaped beyond what JSON requires (<c>-&gt;</c> stays readable), ending with a newline (or one compact object per line for listings).
/// </summary>
public static class JsonOutput
{
    /// <summary>Writes one indented JSON document built by <paramref name="write"/>.</summary>
    public static void Write(TextWriter output, Action<Utf8JsonWriter> write) => WriteCore(output, write, indented: true);

    /// <summary>Writes one compact JSON object on a line (JSON lines).</summary>
    public static void WriteLine(TextWriter output, Action<Utf8JsonWriter> write) => WriteCore(output, write, indented: false);

    static void WriteCore(TextWriter output, Action<Utf8JsonWriter> write, bool indented)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            write(w);
        output.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>Writes <paramref name="name"/>: a string array.</summary>
    public static void WriteStrings(this Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }
}
