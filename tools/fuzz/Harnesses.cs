using Encoding = System.Text.Encoding;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Verifier;

namespace BpfJit.Fuzz;

/// <summary>
/// One input-fuzzing target: a parser fed arbitrary bytes. Every input must end either normally or
/// in a typed <see cref="BpfException"/>; anything else (an IndexOutOfRangeException, a hang, a
/// crash) is a bug. Shared by the fuzzing tool (tools/fuzz) and the corpus-replay test.
/// </summary>
public sealed record Harness(string Name, string CorpusFolder, Action<byte[]> Run, string Description);

/// <summary>The harnesses: ELF/BTF loader, instruction decoder, verifier, assembler, conformance-file parser, scenario files.</summary>
public static class Harnesses
{
    static readonly Lazy<string> s_scenarioDir = new(CreateScenarioDirectory);

    /// <summary>Every harness, by name.</summary>
    public static IReadOnlyList<Harness> All { get; } =
    [
        new("elf", "elf", Elf, "ObjectFile.Parse on an object file, then disassembly of every program"),
        new("decode", "decode", Decode, "Decoder.Decode on raw instruction bytes; encoding the result must give the bytes back"),
        new("verify", "decode", Verify, "decoded instructions through the verifier (any verdict, no exception)"),
        new("asm", "asm", Asm, "Assembler.Assemble on text, then disassembly"),
        new("conformance", "conformance", Conformance, "ConformanceFile.Parse on a bpf_conformance .data file"),
        new("scenario", "scenario", Scenario, "a scenario file built and run on the interpreter"),
    ];

    /// <summary>The harness called <paramref name="name"/>.</summary>
    public static Harness Get(string name) =>
        All.FirstOrDefault(h => h.Name == name) ?? throw new ArgumentException($"unknown harness '{name}' (known: {string.Join(", ", All.Select(h => h.Name))})");

    /// <summary>True for the outcomes a bad input may have: a typed BpfJit exception.</summary>
    public static bool IsExpected(Exception e) => e is BpfException;

    /// <summary>The repository root (the folder holding BpfJit.sln), searched upwards from the running assembly.</summary>
    public static string RepoRoot { get; } = FindRoot();

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "BpfJit.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }

    /// <summary>tests/fuzz-corpus/<paramref name="folder"/>'s files, plus derived ones from ../shared/conformance when it exists.</summary>
    public static IEnumerable<(string Name, byte[] Bytes)> Corpus(string folder)
    {
        string dir = Path.Combine(RepoRoot, "tests", "fuzz-corpus", folder);
        if (Directory.Exists(dir))
            foreach (var file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                yield return (Path.GetRelativePath(RepoRoot, file), File.ReadAllBytes(file));
        string shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "conformance"));
        if (!Directory.Exists(shared)) yield break;
        foreach (var file in Directory.GetFiles(shared, "*.data").Order(StringComparer.Ordinal))
        {
            string text = File.ReadAllText(file);
            string name = "shared/conformance/" + Path.GetFileName(file);
            switch (folder)
            {
                case "conformance":
                    yield return (name, Encoding.UTF8.GetBytes(text));
                    break;
                case "asm" when AsmSection(text) is { } asm:
                    yield return (name + " (asm)", Encoding.UTF8.GetBytes(asm));
                    break;
                case "decode":
                    Instruction[]? program = null;
                    try { program = ConformanceFile.Parse(text, name).Program; }
                    catch (BpfException) { }
                    if (program != null) yield return (name + " (encoded)", Encoder.Encode(program));
                    break;
            }
        }
    }

    /// <summary>The <c>-- asm</c> section of a conformance file, or null.</summary>
    public static string? AsmSection(string data)
    {
        int start = data.IndexOf("-- asm", StringComparison.Ordinal);
        if (start < 0) return null;
        start = data.IndexOf('\n', start) + 1;
        int end = data.IndexOf("\n--", start, StringComparison.Ordinal);
        return end < 0 ? data[start..] : data[start..(end + 1)];
    }

    static void Elf(byte[] input)
    {
        var collection = ObjectFile.Parse(input, "fuzz.o");
        foreach (var program in collection.Programs)
            Disassembler.Disassemble(program.Instructions);
    }

    static void Decode(byte[] input)
    {
        var slots = Decoder.Decode(input);
        Disassembler.Disassemble(slots);
        var again = Encoder.Encode(slots);
        if (!again.AsSpan().SequenceEqual(input))
            throw new InvalidOperationException($"decode/encode round trip changed the bytes ({input.Length} in, {again.Length} out)");
    }

    // Lazy: under AFL nothing instrumented may run before SharpFuzz has set up the coverage map.
    static readonly Lazy<HelperTable> s_helpers = new(BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable);
    static readonly MapInfo[] s_maps = [new("h", BpfJit.Frontend.Elf.MapType.Hash, 4, 16, 8), new("a", BpfJit.Frontend.Elf.MapType.Array, 4, 8, 1), new("s", BpfJit.Frontend.Elf.MapType.SockMap, 4, 8, 8), new("rb", BpfJit.Frontend.Elf.MapType.RingBuf, 0, 0, 4096)];

    static void Verify(byte[] input)
    {
        var slots = Decoder.Decode(input);
        var result = BpfJit.Verifier.Verifier.Verify(slots, new VerifierOptions { Helpers = s_helpers.Value, Maps = s_maps, LogLevel = 1 });
        if (!result.Accepted && string.IsNullOrEmpty(result.Error)) throw new InvalidOperationException("a rejection without a message");
    }

    static void Asm(byte[] input)
    {
        var slots = Assembler.Assemble(Encoding.UTF8.GetString(input));
        Disassembler.Disassemble(slots);
    }

    static void Conformance(byte[] input) => ConformanceFile.Parse(Encoding.UTF8.GetString(input), "fuzz.data");

    static void Scenario(byte[] input)
    {
        // Relative object paths in the corpus ("../programs/x.o", "progs/y.o") resolve through links
        // beside the file the input is written to.
        ProgramVerification.Verifier ??= new SkLookupProgramVerifier();
        string file = Path.Combine(s_scenarioDir.Value, $"input-{Environment.CurrentManagedThreadId}.json");
        File.WriteAllBytes(file, input);
        using var env = ScenarioBuilder.Build(file, InterpreterEngine.Instance);
        ScenarioRunner.Run(env, TextWriter.Null);
    }

    static string CreateScenarioDirectory()
    {
        string root = Directory.CreateTempSubdirectory("bpfjit-fuzz-").FullName;
        string scenarios = Directory.CreateDirectory(Path.Combine(root, "scenarios")).FullName;
        string tests = Path.Combine(RepoRoot, "tests");
        Directory.CreateSymbolicLink(Path.Combine(scenarios, "progs"), Path.Combine(tests, "scenarios", "progs"));
        Directory.CreateSymbolicLink(Path.Combine(root, "programs"), Path.Combine(tests, "programs"));
        Directory.CreateSymbolicLink(Path.Combine(root, "tests"), tests);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(root, recursive: true); } catch (IOException) { } };
        return scenarios;
    }
}
