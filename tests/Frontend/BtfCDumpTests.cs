using System.Diagnostics;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Frontend;

/// <summary><c>bpfjit btf OBJECT.o</c> prints the C header <c>bpftool btf dump file OBJECT.o format c</c> prints.</summary>
public class BtfCDumpTests
{
    const string Guard = "#endif /* __VMLINUX_H__ */\n";

    static string Ours(string path) => BtfCDumper.Dump(ObjectFile.Load(path).Btf!);

    // The header part: what bpftool prints, without the comment of functions and variables after it.
    static string Header(string dump) => dump[..(dump.IndexOf(Guard, StringComparison.Ordinal) + Guard.Length)];

    static IEnumerable<string> Bundled() =>
        Directory.GetFiles(Path.Combine(Paths.RepoRoot, "tests", "programs"), "*.o").Order().Select(Path.GetFileName)!;

    [TestCaseSource(nameof(Bundled))]
    public void EveryBundledObjectMatchesBpftool(string name)
    {
        string path = Repo("tests", "programs", name);
        string ours = Header(Ours(path));
        if (!File.Exists("/usr/sbin/bpftool") && !File.Exists("/usr/bin/bpftool")) Assert.Ignore("bpftool is not installed (apt-get install bpftool)");
        using var p = Process.Start(new ProcessStartInfo("bpftool", $"btf dump file {path} format c") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string theirs = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) Assert.Ignore($"bpftool btf dump failed ({p.ExitCode})");
        Assert.That(ours, Is.EqualTo(theirs));
    }

    /// <summary>
    /// Cycles through pointers (a forward declaration first), typedef'd anonymous struct and union, enums of 1, 4 and 8
    /// bytes, bitfields, packed and over-aligned structs with explicit padding, function pointers with varargs and
    /// (void), const volatile, two-dimensional arrays and pointers to arrays, nested anonymous members: bpftool's
    /// output, checked in (tests/Frontend/btf/btf_shapes.c says how it was made).
    /// </summary>
    [Test]
    public void TheShapesMatchTheCheckedInBpftoolOutput()
    {
        string dir = Repo("tests", "Frontend", "btf");
        string expected = File.ReadAllText(Path.Combine(dir, "btf_shapes.expected.h"));
        Assert.That(Header(Ours(Path.Combine(dir, "btf_shapes.o"))), Is.EqualTo(expected));
    }

    [Test]
    public void FunctionsVariablesAndSectionsFollowAsAComment()
    {
        string dump = Ours(Repo("tests", "Frontend", "btf", "btf_shapes.o"));
        string tail = dump[(dump.IndexOf(Guard, StringComparison.Ordinal) + Guard.Length)..];
        Assert.That(tail, Does.StartWith("\n/* functions, variables and data sections"));
        Assert.That(tail, Does.Contain(" * [52] FUNC int g_unused_fn(struct all *a); linkage global\n"));
        Assert.That(tail, Does.Contain("VAR enum { ANON_A = 7, } anon_var; linkage global"), "an anonymous enum only a variable uses is shown there");
        Assert.That(tail, Does.Contain("DATASEC .bss size 0: anon_var at 0 (4 bytes), g_all at 0 (224 bytes)"));
        Assert.That(tail.TrimEnd(), Does.EndWith("*/"));
    }

    [Test]
    public void TheVerbPrintsItAndJsonCarriesIt()
    {
        string path = Repo("tests", "programs", "redir_port.o");
        var (code, output, err) = Run("btf", path);
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("struct bpf_sock;\n\ntypedef unsigned short __u16;").And.Contain("\t__be16 remote_port;"));
        var json = Json("btf", path);
        Assert.That(json.GetProperty("c").GetString(), Is.EqualTo(output));
        Assert.That(json.GetProperty("types").GetInt32(), Is.GreaterThan(10));
    }

    [Test]
    public void AFileThatIsNoObjectIsBadInput() => AssertBadInput(Run("btf", Repo("examples", "prog.bin")), "prog.bin");
}
