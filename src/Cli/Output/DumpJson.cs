using BpfJit.IlEmitter;

namespace BpfJit.Cli.Output;

/// <summary><c>bpfjit dump --json</c>: the IL grouped by eBPF instruction, the C# and the DLL path in one object.</summary>
public static class DumpJson
{
    /// <summary>Writes the object for <paramref name="compiled"/> (saving the DLL first when <c>--dll</c> is given); returns exit code 0.</summary>
    public static int Write(Args args, CompiledProgram compiled, bool il, TextWriter stdout, IReadOnlyList<XlatedListing.Line>? xlated = null, byte[]? native = null)
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
            if (native != null)
            {
                w.WriteStartObject("native");
                w.WriteString("arch", NativeListing.Arch);
                w.WriteNumber("bytes", native.Length);
                // Offsets from the method's start: the address is this process's and says nothing to a reader.
                w.WriteStrings("listing", NativeListing.Listing(0, native).Split('\n', StringSplitOptions.RemoveEmptyEntries));
                w.WriteEndObject();
            }
            if (il) IlListingJson.Write(w, compiled.GetIlListing());
            if (args.Has("--cs")) w.WriteString("cs", compiled.GetCSharp());
            if (dll != null) w.WriteString("dll", dll);
            w.WriteEndObject();
        });
        return Cli.Ok;
    }
}
