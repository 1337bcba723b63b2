namespace BpfJit.Frontend.Elf;

/// <summary>
/// A bad or unsupported eBPF object file. The message is one line naming where the problem is:
/// <c>prog.o: section .maps: offset 0x40: unknown map type 99</c>.
/// </summary>
public sealed class BpfObjectException : BpfException
{
    /// <summary>Creates an error for <paramref name="file"/>, optionally at a section and byte offset.</summary>
    public BpfObjectException(string file, string? section, long? offset, string reason)
        : base(Compose(file, section, offset, reason))
    {
        File = file;
        Section = section;
        Offset = offset;
        Reason = reason;
    }

    /// <summary>Creates an error that wraps the cause (for example a decode error).</summary>
    public BpfObjectException(string file, string? section, long? offset, string reason, Exception inner)
        : base(Compose(file, section, offset, reason), inner)
    {
        File = file;
        Section = section;
        Offset = offset;
        Reason = reason;
    }

    /// <summary>The object file's name as given to the loader.</summary>
    public string File { get; }

    /// <summary>The ELF section the problem is in, when known.</summary>
    public string? Section { get; }

    /// <summary>The byte offset of the problem, inside <see cref="Section"/> when one is named, else in the file.</summary>
    public long? Offset { get; }

    /// <summary>What is wrong, without the location prefix.</summary>
    public string Reason { get; }

    static string Compose(string file, string? section, long? offset, string reason)
    {
        var parts = new List<string> { file };
        if (section != null) parts.Add($"section {section}");
        if (offset != null) parts.Add($"offset 0x{offset.Value:x}");
        parts.Add(reason);
        return string.Join(": ", parts);
    }
}
