using System.Text;
using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.Frontend.Elf;

namespace BpfJit.Cli.Commands;

/// <summary>
/// Reads a program from a file, telling its kind by content (never by its name): an ELF object (the first
/// program, or the one named), a bpf_conformance <c>.data</c> file (text with an <c>-- asm</c> or <c>-- raw</c>
/// section), assembly text, or raw little-endian bytecode (8 bytes per slot). Every verb that takes a
/// PROGRAM reads it here, with the size limits of <see cref="InputFile"/>; bad input is a
/// <see cref="BpfException"/> whose message starts with the path.
/// </summary>
public static partial class ProgramFiles
{
    [GeneratedRegex(@"^\s*--\s*(asm|raw|result|mem)\b", RegexOptions.Multiline)]
    private static partial Regex ConformanceSection();

    /// <summary>Loads the program slots of <paramref name="path"/> (<paramref name="program"/> names one program of an ELF object).</summary>
    public static Instruction[] Load(string path, string? program = null)
    {
        byte[] bytes = InputFile.ReadBytes(path, InputFile.MaxObjectBytes, "program");
        InputKind kind = InputFile.Kind(bytes);
        if (kind == InputKind.Elf)
        {
            var spec = ObjectFile.Parse(bytes, path);
            ProgramSpec? chosen = null;
            if (program == null) chosen = spec.Programs.FirstOrDefault();
            else if (spec.Programs.TryGet(program, out var p)) chosen = p;
            return chosen?.Instructions ?? throw new BpfException(
                $"{path}: no program {(program == null ? "in the object" : $"named '{program}'")} (programs: {string.Join(", ", spec.Programs.Select(x => x.Name))})");
        }
        if (program != null) throw new BpfException($"{path}: --program applies to ELF objects only ({InputFile.Describe(bytes)})");
        if (kind == InputKind.Text) return FromText(Encoding.UTF8.GetString(bytes), path);
        if (bytes.Length > InputFile.MaxBytecodeBytes)
            throw new BpfException($"{path}: {bytes.Length:N0} bytes of raw bytecode, more than the {InputFile.MaxBytecodeBytes:N0} of a 1,000,000-instruction program");
        if (bytes.Length % Instruction.Size != 0)
            throw new BpfException($"{path}: not an ELF object, not text, and {bytes.Length:N0} bytes is not a whole number of 8-byte instruction slots (raw bytecode)");
        return FromBytes(bytes, path);
    }

    /// <summary>A <c>.data</c> file's program or assembly text; a file without instructions is refused.</summary>
    static Instruction[] FromText(string text, string path)
    {
        Instruction[] code;
        if (ConformanceSection().IsMatch(text))
        {
            var test = ConformanceFile.Parse(text, path);
            code = test.Program ?? throw new BpfException($"{path}: no program in the bpf_conformance file ({test.SkipReason ?? "no asm or raw section"})");
        }
        else
        {
            try { code = Assembler.Assemble(text); }
            catch (BpfAssemblerException e) { throw new BpfException($"{path}: {e.Message}", e); }
        }
        if (code.Length == 0) throw new BpfException($"{path}: no instructions (only comments or blank lines)");
        return code;
    }

    /// <summary>True when <paramref name="path"/> is an existing regular file that starts with the ELF magic.</summary>
    public static bool IsElfFile(string path)
    {
        if (!File.Exists(path) || Directory.Exists(path)) return false;
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[4];
            return f.Read(magic) == 4 && magic.SequenceEqual("\u007fELF"u8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // the reader that follows reports it with the path
        }
    }

    /// <summary>True when <paramref name="path"/> is a text file whose first non-blank character is <c>{</c>: a scenario (JSON).</summary>
    public static bool IsJsonFile(string path)
    {
        if (!File.Exists(path) || Directory.Exists(path)) return false;
        try
        {
            using var f = File.OpenRead(path);
            byte[] head = new byte[4096];
            int n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            var span = head.AsSpan(0, n);
            // A multi-byte character may be cut at the end of the head: judge the text before it.
            while (span.Length > 0 && span[^1] >= 0x80) span = span[..^1];
            return InputFile.Kind(span) == InputKind.Text && Encoding.UTF8.GetString(span).TrimStart().StartsWith('{');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Decodes raw little-endian bytecode; ELF images are recognised and refused.</summary>
    public static Instruction[] FromBytes(byte[] bytes, string name)
    {
        if (InputFile.Kind(bytes) == InputKind.Elf)
            throw new BpfException($"{name}: an ELF object where raw bytecode is expected");
        if (bytes.Length == 0) throw new BpfException($"{name}: no instructions");
        try
        {
            return BpfJit.Frontend.Decoder.Decode(bytes);
        }
        catch (BpfDecodeException e)
        {
            throw new BpfException($"{name}: {e.Message}", e);
        }
    }
}
