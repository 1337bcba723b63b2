using System.Text.Json;
using BpfJit.Cli.Commands;

namespace BpfJit.Tests.Loader;

/// <summary>The inspect and disasm commands, called directly.</summary>
public class CliCommandTests
{
    static (int Code, string Out, string Err) Run(Func<string[], TextWriter, TextWriter, int> command, params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = command(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    static (int, string, string) Inspect(params string[] args) => Run((a, o, e) => BpfJit.Cli.Cli.Run(["inspect", .. a], o, e), args);
    static (int, string, string) Disasm(params string[] args) => Run((a, o, e) => BpfJit.Cli.Cli.Run(["disasm", .. a], o, e), args);

    [Test]
    public void InspectListsProgramsAndMaps()
    {
        var (code, output, err) = Inspect(Corpus.ObjectPath("dispatcher"));
        Assert.That(code, Is.Zero, err);
        Assert.That(err, Is.Empty);
        var lines = output.Split('\n').Select(l => l.TrimEnd()).ToList();
        Assert.That(lines, Does.Contain("license: BSD-3-Clause"));
        Assert.That(lines.Any(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+dispatcher\s+sk_lookup/dispatcher\s+SkLookup\s+SkLookup\s+\d+\s+[0-9a-f]{16}\s+BSD-3-Clause$")), output);
        Assert.That(lines.Any(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+bindings\s+LpmTrie\s+23\s+8\s+1000000\s+0x1$")), output);
        Assert.That(lines.Any(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+destinations\s+Hash\s+0\s+0\s+1024\s+0x0$")), output);
    }

    /// <summary>SK_REUSEPORT is listed as supported, by its type and attach type; other types are marked unsupported.</summary>
    [Test]
    public void InspectListsSkReuseportAsSupported()
    {
        string path = Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", "mixed_types.o");
        var (code, output, err) = Inspect(path);
        Assert.That(code, Is.Zero, err);
        var lines = output.Split('\n').Select(l => l.TrimEnd()).ToList();
        Assert.That(lines.Any(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+reuseport_prog\s+sk_reuseport\s+SkReuseport\s+SkReuseportSelect\s")), output);
        Assert.That(lines.Any(l => l.Contains("xdp_prog", StringComparison.Ordinal) && l.Contains("Xdp (unsupported)", StringComparison.Ordinal)), output);
        (code, output, _) = Inspect(path, "--json");
        using var doc = JsonDocument.Parse(output);
        var program = doc.RootElement.GetProperty("programs").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "reuseport_prog");
        Assert.That(program.GetProperty("supported").GetBoolean());
    }

    [Test]
    public void InspectJson()
    {
        var (code, output, err) = Inspect(Corpus.ObjectPath("multi_prog"), "--json");
        Assert.That(code, Is.Zero, err);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.That(root.GetProperty("license").GetString(), Is.EqualTo("Dual BSD/GPL"));
        var programs = root.GetProperty("programs").EnumerateArray().ToList();
        Assert.That(programs.Select(p => p.GetProperty("name").GetString()), Is.EqualTo(new[] { "multi_pass", "multi_drop", "multi_redir" }));
        Assert.That(programs.Select(p => p.GetProperty("section").GetString()), Is.EqualTo(new[] { "sk_lookup/pass", "sk_lookup/drop", "sk_lookup/redir" }));
        Assert.That(programs.All(p => p.GetProperty("type").GetString() == "SkLookup" && p.GetProperty("typeId").GetInt32() == 30));
        Assert.That(programs.All(p => p.GetProperty("attachType").GetString() == "SkLookup"));
        Assert.That(programs.All(p => p.GetProperty("instructions").GetInt32() > 0));
        var maps = root.GetProperty("maps").EnumerateArray().ToList();
        Assert.That(maps.Select(m => (m.GetProperty("name").GetString(), m.GetProperty("typeId").GetInt32(), m.GetProperty("keySize").GetInt32(),
            m.GetProperty("valueSize").GetInt32(), m.GetProperty("maxEntries").GetInt32(), m.GetProperty("flags").GetInt32())),
            Is.EqualTo(new[] { ("redir_map", 15, 4, 8, 2, 0), ("run_map", 2, 4, 4, 3, 0) }));
    }

    [Test]
    public void InspectMarksUnsupportedPrograms()
    {
        var (code, output, _) = Inspect(Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", "mixed_types.o"));
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("Xdp (unsupported)").And.Contain("note: custom_prog: section 'custom/dispatcher' is not a known program type"));
    }

    [Test]
    public void DisasmPrintsEveryProgram()
    {
        var (code, output, err) = Disasm(Corpus.ObjectPath("multi_prog"));
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("program multi_pass (section sk_lookup/pass, type SkLookup), 14 instructions:"));
        Assert.That(output, Does.Contain("program multi_drop").And.Contain("program multi_redir"));
        Assert.That(output, Does.Contain("call bpf_sk_assign#124"));
        Assert.That(output, Does.Contain("= map[idx:1] ll  ; map run_map"));
        Assert.That(output, Does.Not.Contain("; mark_ran"), "no source without --source");
    }

    [Test]
    public void DisasmOneProgramWithSource()
    {
        var (code, output, err) = Disasm(Corpus.ObjectPath("subprog_calls"), "--program", "subprog_port", "--source");
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Not.Contain("subprog_hash"));
        var lines = output.Split('\n');
        int header = Array.FindIndex(lines, l => l.StartsWith("<subprog_port>:"));
        Assert.That(header, Is.GreaterThanOrEqualTo(0), output);
        // The same lines llvm-objdump -S shows for this function.
        Assert.That(lines[header + 1], Is.EqualTo("; return is_privileged_port(ctx->local_port) ? SK_DROP : SK_PASS;"));
        Assert.That(lines[header + 2], Is.EqualTo("    0: r1 = *(u32 *)(r1 + 60)"));
        int sub = Array.FindIndex(lines, l => l == "<is_privileged_port>: ; from .text");
        Assert.That(sub, Is.GreaterThan(header), output);
        Assert.That(lines[sub + 1], Is.EqualTo("; static __attribute__((noinline)) int is_privileged_port(__u32 port)"));
        Assert.That(output, Does.Contain("; return port < 1024;"));
        Assert.That(output, Does.Match(@"    1: call pc\+7"));
    }

    [Test]
    public void DisasmGlobalDataAnnotatesVariables()
    {
        var (code, output, _) = Disasm(Corpus.ObjectPath("global_data"), "-S");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("; lookups in .bss+0").And.Contain("; seen_ports in .data+8").And.Contain("; lookups++;"));
    }

    [TestCase(new string[0], "no OBJECT given")]
    [TestCase(new[] { "--bogus" }, "unknown option '--bogus'")]
    [TestCase(new[] { "a.o", "b.o" }, "unexpected argument 'b.o'")]
    public void InspectUsageErrors(string[] args, string message)
    {
        var (code, output, err) = Inspect(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(output, Is.Empty);
        Assert.That(err, Is.EqualTo($"bpfjit inspect: {message} (try 'bpfjit inspect --help'){Environment.NewLine}"));
    }

    [TestCase(new string[0], "no OBJECT given")]
    [TestCase(new[] { "x.o", "--program" }, "option --program needs a value")]
    [TestCase(new[] { "x.o", "--jsn" }, "unknown option '--jsn'")]
    public void DisasmUsageErrors(string[] args, string message)
    {
        var (code, _, err) = Disasm(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Is.EqualTo($"bpfjit disasm: {message} (try 'bpfjit disasm --help'){Environment.NewLine}"));
    }

    [Test]
    public void HelpAndDispatchThroughTheCli()
    {
        var (code, output, _) = Inspect("--help");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.StartWith("usage: bpfjit inspect OBJECT [--json]"));
        var o = new StringWriter();
        var e = new StringWriter();
        Assert.That(BpfJit.Cli.Cli.Run(["disasm", Corpus.ObjectPath("redir_port"), "--program", "redir_port"], o, e), Is.Zero, e.ToString());
        Assert.That(o.ToString(), Does.StartWith("program redir_port (section sk_lookup, type SkLookup)"));
        o = new StringWriter();
        Assert.That(BpfJit.Cli.Cli.Run(["--help"], o, e), Is.Zero);
        Assert.That(o.ToString(), Does.Contain("inspect").And.Contain("disasm"));
    }

    [Test]
    public void DisasmUnknownProgram()
    {
        string path = Corpus.ObjectPath("redir_port");
        var (code, _, err) = Disasm(path, "--program", "nope");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Is.EqualTo($"bpfjit disasm: {path}: no program named 'nope' (programs: redir_port){Environment.NewLine}"));
    }

    [Test]
    public void BadObjectIsOneLineWithLocation()
    {
        string dir = Path.Combine(Path.GetTempPath(), "bpfjit-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var bytes = File.ReadAllBytes(Corpus.ObjectPath("legacy_maps"));
            var elf = BpfJit.Frontend.Elf.ElfFile.Parse(bytes, "x");
            var maps = elf.FindSection("maps")!;
            bytes[(int)maps.FileOffset] = 99;
            string bad = Path.Combine(dir, "bad.o");
            File.WriteAllBytes(bad, bytes);
            foreach (var (verb, command) in new (string, Func<string[], TextWriter, TextWriter, int>)[] { ("inspect", (a, o, e) => BpfJit.Cli.Cli.Run(["inspect", .. a], o, e)), ("disasm", (a, o, e) => BpfJit.Cli.Cli.Run(["disasm", .. a], o, e)) })
            {
                var (code, output, err) = Run(command, bad);
                Assert.That(code, Is.EqualTo(2));
                Assert.That(output, Is.Empty);
                Assert.That(err, Is.EqualTo($"bpfjit {verb}: {bad}: section maps: offset 0x0: map 'legacy_sockets': unknown map type 99{Environment.NewLine}"));
            }
            var (c2, _, e2) = Inspect(Path.Combine(dir, "missing.o"));
            Assert.That(c2, Is.EqualTo(2));
            Assert.That(e2, Does.StartWith($"bpfjit inspect: {Path.Combine(dir, "missing.o")}: no such file"));
            Assert.That(e2.TrimEnd(), Does.Not.Contain('\n'));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
