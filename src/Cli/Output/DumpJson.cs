using BpfJit.IlEmitter;

namespace BpfJit.Cli.Output;

/// <summary><c>bpfjit dump --json</c>: the IL grouped by eBPF instruction, the C# and the DLL path in one object.</summary>
public static class DumpJson
{
    /// <summary>Writes the object for <paramref name="compiled"/> (saving the DLL first when <c>--dll</c> is given); returns exit code 0.</summary>
    public static int Write(Args args, CompiledProgram compiled, bool il, TextWriter stdout, IReadOnlyList<XlatedListing.Line>? xlated = null, NativeDump? native = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(compiled);
        string? dll = args.Get("--dll");
        if (dll != null)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(dll));
            if (dir != null) Directory.CreateDirectory(dir);
            compiled.SaveAssembly(dll);
        }
        JsonOutput.Write(stdout, w =>
        {
            w.WriteStartObject();
            w.WriteString("program", args.Positional[0]);
            if (args.Get("--program") is { } name) w.WriteString("name", name);
            w.WriteNumber("slots", compiled.Program.Length);
            if (xlated != null) XlatedListing.WriteJson(xlated, w);
            if (native != null) WriteNative(w, native);
            if (il) IlListingJson.Write(w, compiled.GetIlListing());
            if (args.Has("--cs")) w.WriteString("cs", compiled.GetCSharp());
            if (dll != null) w.WriteString("dll", dll);
            w.WriteEndObject();
        });
        return Cli.Ok;
    }

    /// <summary>
    /// <c>"native": {"arch", "bytes", "listing": [lines], "interleaved", "note", "instructions": [{"offset", "slots",
    /// "part"}]}</c>: offsets from the method's start (the address is this process's and says nothing to a reader);
    /// "instructions" only when interleaved, each instruction's eBPF slots (-1 the emitter's prologue, -2 the shared
    /// return from a bpf-to-bpf call) and, for RyuJIT's own code, a "part": prolog, epilog (with the exit's slots when
    /// the map puts both at one offset) or unmapped (no slots).
    /// </summary>
    static void WriteNative(System.Text.Json.Utf8JsonWriter w, NativeDump native)
    {
        w.WriteStartObject("native");
        w.WriteString("arch", NativeListing.Arch);
        w.WriteNumber("bytes", native.Code.Length);
        w.WriteStrings("listing", NativeListing.Listing(0, native.Code).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
        w.WriteBoolean("interleaved", native.Origins != null);
        w.WriteString("note", native.Note);
        if (native.Origins != null)
        {
            w.WriteStartArray("instructions");
            foreach (var o in native.Origins)
            {
                w.WriteStartObject();
                w.WriteNumber("offset", o.Offset);
                w.WriteStartArray("slots");
                foreach (int slot in o.Slots) w.WriteNumberValue(slot);
                w.WriteEndArray();
                if (o.Part != null) w.WriteString("part", o.Part);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }
}
