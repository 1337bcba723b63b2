using System.Globalization;
using System.Text;

namespace BpfJit.Frontend.Conformance;

/// <summary>
/// One bpf_conformance <c>.data</c> test vector: the program (from <c>-- raw</c> when present,
/// else assembled from <c>-- asm</c>), its input memory, and the expected r0 or error.
/// </summary>
public sealed class ConformanceFile
{
    /// <summary>Where the test came from (a path or a name).</summary>
    public required string Name { get; init; }

    /// <summary>The program's instruction slots, or null when the file has none.</summary>
    public Instruction[]? Program { get; init; }

    /// <summary>The input memory (empty when the file has none).</summary>
    public byte[] Memory { get; init; } = [];

    /// <summary>The expected value of r0, when the file gives one.</summary>
    public ulong? ExpectedResult { get; init; }

    /// <summary>The expected error text, when the file gives one.</summary>
    public string? ExpectedError { get; init; }

    /// <summary>Why the test should be skipped (unknown section, no expectation), or null.</summary>
    public string? SkipReason { get; init; }

    /// <summary>Reads and parses a file; errors name the file.</summary>
    public static ConformanceFile Load(string path)
    {
        return Parse(InputFile.ReadText(path, InputFile.MaxTextBytes, "bpf_conformance .data file"), path);
    }

    /// <summary>Parses the text of a <c>.data</c> file; a malformed file raises a <see cref="BpfException"/> naming it.</summary>
    public static ConformanceFile Parse(string text, string name)
    {
        var sections = new Dictionary<string, List<(int Line, string Text)>>();
        List<(int, string)>? current = null;
        string? skip = null;
        int number = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            number++;
            string line = rawLine.TrimEnd('\r');
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            if (line.Contains("--", StringComparison.Ordinal))
            {
                string? section = SectionOf(line);
                if (section == null)
                {
                    skip ??= $"unknown section '{line.Trim()}'";
                    current = null;
                }
                else if (section is "ignore") current = null;
                else
                {
                    if (!sections.TryGetValue(section, out var list)) sections[section] = list = [];
                    current = list;
                }
                continue;
            }
            if (line.Trim().Length == 0) continue;
            current?.Add((number, line));
        }

        Instruction[]? program = null;
        try
        {
            if (sections.TryGetValue("raw", out var raw))
            {
                var words = raw.SelectMany(l => l.Text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                    .Select(w => (ulong)Assembler.ParseImm(w));
                program = Decoder.Decode(words);
            }
            else if (sections.TryGetValue("asm", out var asm))
            {
                var sb = new StringBuilder();
                int expected = 1;
                foreach (var (line, t) in asm)
                {
                    // Keep file line numbers so assembler errors point into the file.
                    while (expected < line) { sb.Append('\n'); expected++; }
                    sb.Append(t).Append('\n');
                    expected++;
                }
                program = Assembler.Assemble(sb.ToString());
            }
        }
        catch (BpfAssemblerException e)
        {
            throw new BpfException($"{name}: line {e.Line}: {e.Reason}", e);
        }
        catch (BpfDecodeException e)
        {
            throw new BpfException($"{name}: {e.Message}", e);
        }
        catch (FormatException e)
        {
            throw new BpfException($"{name}: -- raw: {e.Message}", e);
        }

        byte[] memory = [];
        if (sections.TryGetValue("mem", out var mem))
        {
            var bytes = new List<byte>();
            foreach (var (line, t) in mem)
            {
                foreach (var tok in t.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                {
                    string hex = tok.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? tok[2..] : tok;
                    if (!byte.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
                        throw new BpfException($"{name}: line {line}: invalid memory byte '{tok}'");
                    bytes.Add(b);
                }
            }
            memory = bytes.ToArray();
        }

        ulong? result = null;
        if (sections.TryGetValue("result", out var res) && res.Count > 0)
        {
            var (line, t) = res[^1];
            string v = t.Trim();
            bool ok = v.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(v.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong r)
                : TryDecimal(v, out r);
            if (!ok) throw new BpfException($"{name}: line {line}: invalid result '{v}'");
            result = r;
        }
        string? error = sections.TryGetValue("error", out var err) && err.Count > 0
            ? string.Join("\n", err.Select(e => e.Text.Trim())) : null;

        if (skip == null && result == null && error == null) skip = "no result or error section";
        if (skip == null && program == null) skip = "no program";
        return new ConformanceFile
        {
            Name = name, Program = program, Memory = memory, ExpectedResult = result, ExpectedError = error, SkipReason = skip,
        };
    }

    static bool TryDecimal(string v, out ulong value)
    {
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long s)) { value = (ulong)s; return true; }
        return ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    // Section headers are matched by substring, in the suite's own order.
    static string? SectionOf(string header)
    {
        if (header.Contains("asm", StringComparison.Ordinal)) return "asm";
        if (header.Contains("result", StringComparison.Ordinal)) return "result";
        if (header.Contains("mem", StringComparison.Ordinal)) return "mem";
        if (header.Contains("raw", StringComparison.Ordinal)) return "raw";
        if (header.Contains("no register offset", StringComparison.Ordinal)) return "ignore";
        if (header.Contains(" c", StringComparison.Ordinal)) return "ignore";
        if (header.Contains("error", StringComparison.Ordinal)) return "error";
        return null;
    }
}
