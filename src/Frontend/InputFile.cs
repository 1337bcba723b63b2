using System.Text;

namespace BpfJit.Frontend;

/// <summary>What a file holds, told by its content (not its name).</summary>
public enum InputKind
{
    /// <summary>An ELF object (starts with the ELF magic).</summary>
    Elf,
    /// <summary>Text: assembly, a bpf_conformance <c>.data</c> file, or JSON.</summary>
    Text,
    /// <summary>Anything else: raw little-endian bytecode, 8 bytes per instruction slot.</summary>
    Binary,
}

/// <summary>A file that cannot be read as the format asked for: missing, a directory, empty, too large, or of another kind.</summary>
public sealed class BpfInputException : BpfException
{
    /// <summary>Creates the error for <paramref name="path"/>: the message is <c>PATH: REASON</c>.</summary>
    public BpfInputException(string path, string reason) : base($"{path}: {reason}") { Path = path; Reason = reason; }

    /// <summary>Creates the error for <paramref name="path"/> with its cause.</summary>
    public BpfInputException(string path, string reason, Exception inner) : base($"{path}: {reason}", inner) { Path = path; Reason = reason; }

    /// <summary>The file as it was named.</summary>
    public string Path { get; }

    /// <summary>What is wrong with it, without the path.</summary>
    public string Reason { get; }
}

/// <summary>
/// Reads the files the tool and the library are given, with a size limit suited to each format, so that
/// <c>/dev/zero</c>, a sparse multi-gigabyte file or a pipe that never ends is refused with a one-line error
/// instead of exhausting memory. Every error is a <see cref="BpfException"/> whose message starts with the
/// path as given and says what is wrong: <c>FILE: no such file</c>, <c>FILE: is a directory</c>,
/// <c>FILE: empty file</c>, <c>FILE: more than N bytes (the limit for ...)</c>.
/// </summary>
public static class InputFile
{
    /// <summary>The largest ELF object read (256 MiB; <c>.bss</c> takes no file space, so large globals still load).</summary>
    public const long MaxObjectBytes = 256L << 20;

    /// <summary>The largest text file read: assembly, <c>.data</c> files and scenarios (64 MiB).</summary>
    public const long MaxTextBytes = 64L << 20;

    /// <summary>The largest raw program read: 1,000,000 instruction slots, the kernel's limit for a privileged program.</summary>
    public const long MaxBytecodeBytes = 1_000_000L * 8;

    /// <summary>The largest capture read by <c>replay</c> (512 MiB).</summary>
    public const long MaxCaptureBytes = 512L << 20;

    /// <summary>Refuses a path that is a directory or names no file, with the one message every reader uses.</summary>
    public static void RequireFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) throw new BpfInputException(path, "is a directory, not a file");
        if (!File.Exists(path)) throw new BpfInputException(path, "no such file");
    }

    /// <summary>Reads at most <paramref name="limit"/> bytes of <paramref name="path"/>; <paramref name="what"/> names the format in the error.</summary>
    public static byte[] ReadBytes(string path, long limit, string what)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) throw new BpfInputException(path, $"is a directory, not {Article(what)}");
        if (!File.Exists(path)) throw new BpfInputException(path, $"no such file");
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
            // A regular file says its length up front (a sparse file too): refuse before reading anything.
            if (stream.CanSeek && stream.Length > limit)
                throw new BpfInputException(path, $"{stream.Length:N0} bytes, more than the {limit:N0} read for {Article(what)}");
            // Devices and pipes report no length (or 0): read in chunks and stop one byte past the limit.
            var buffer = new MemoryStream();
            byte[] chunk = new byte[81920];
            while (true)
            {
                int n = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, limit + 1 - buffer.Length));
                if (n == 0) break;
                buffer.Write(chunk, 0, n);
                if (buffer.Length > limit)
                    throw new BpfInputException(path, $"more than the {limit:N0} bytes read for {Article(what)} (a device or a pipe that does not end?)");
            }
            if (buffer.Length == 0) throw new BpfInputException(path, $"empty file");
            return buffer.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new BpfInputException(path, $"cannot read: {e.Message}", e);
        }
    }

    /// <summary>Reads a text file of at most <paramref name="limit"/> bytes; bytes that are not UTF-8 text are refused.</summary>
    public static string ReadText(string path, long limit, string what)
    {
        byte[] bytes = ReadBytes(path, limit, what);
        if (Kind(bytes) != InputKind.Text)
            throw new BpfInputException(path, $"not a text file ({Describe(bytes)}), so not {Article(what)}");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Tells the kind of <paramref name="bytes"/> by content: the ELF magic, UTF-8 text without NUL or control bytes, or binary.</summary>
    public static InputKind Kind(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 4 && bytes[0] == 0x7f && bytes[1] == (byte)'E' && bytes[2] == (byte)'L' && bytes[3] == (byte)'F') return InputKind.Elf;
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) return InputKind.Binary;
        foreach (byte b in bytes)
            if (b < 0x20 && b is not ((byte)'\n' or (byte)'\r' or (byte)'\t' or 0x0c)) return InputKind.Binary;
        return InputKind.Text;
    }

    /// <summary>A few words on what the bytes look like, for errors.</summary>
    public static string Describe(ReadOnlySpan<byte> bytes) => Kind(bytes) switch
    {
        InputKind.Elf => "an ELF file",
        InputKind.Text => "text",
        _ => $"{bytes.Length:N0} bytes of binary data",
    };

    static string Article(string what) => what.Length > 0 && "aeiou".Contains(char.ToLowerInvariant(what[0]), StringComparison.Ordinal) ? $"an {what}" : $"a {what}";
}
