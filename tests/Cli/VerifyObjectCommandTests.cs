using BpfJit.Tests.Support;

namespace BpfJit.Tests.Cli;

public class VerifyObjectCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static string Corpus(string name) => Path.Combine(Paths.RepoRoot, "tests", "programs", name);

    [TestCase("verify")]
    [TestCase("cfg")]
    [TestCase("dump")]
    public void AMapTheObjectLeavesUnsizedFailsTheObjectUntilMapSizesIt(string verb)
    {
        // dispatcher.c leaves 'destinations' to its host (key_size 0): libbpf's load fails creating it, before any program.
        string dispatcher = Corpus("dispatcher.o");
        CliHarness.AssertBadInput(Run(verb, dispatcher), $"{dispatcher}: map destinations (Hash): key_size 0 (-EINVAL)", "--map");
        var sized = Run(verb, dispatcher, "--map", "destinations:257:8:1024");
        Assert.That(sized.Code, Is.EqualTo(0), sized.Err);
        CliHarness.AssertBadInput(Run(verb, dispatcher, "--map", "nosuch:4:8:1"), "--map nosuch:4:8:1: no map named 'nosuch' (maps: ");
        CliHarness.AssertBadInput(Run(verb, dispatcher, "--map", "destinations:257:8"), "expected NAME:KEY:VALUE:ENTRIES");
        // A size the kernel refuses is refused as the object's own would be.
        CliHarness.AssertBadInput(Run(verb, dispatcher, "--map", "destinations:257:8:0"), "map destinations (Hash): max_entries 0 (-EINVAL)");
    }

    [Test]
    public void EveryProgramOfAnObjectIsVerified()
    {
        var (code, output, _) = Run("verify", Corpus("multi_prog.o"));
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("program multi_pass").And.Contain("program multi_redir").And.Contain("processed"));
    }

    [Test]
    public void OneProgramByNameWithTheFullLog()
    {
        var (code, output, _) = Run("verify", Corpus("redir_port.o"), "--program", "redir_port", "--log", "2");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("R1=ctx()"));
    }

    [Test]
    public void AnUnknownProgramIsBadInput()
    {
        var (code, _, err) = Run("verify", Corpus("redir_port.o"), "--program", "nope");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.Contain("no program named 'nope' (programs: redir_port)"));
    }

    /// <summary>A whole object: the SK_LOOKUP and SK_REUSEPORT programs are verified; each other one is named, with its section, type and why.</summary>
    [Test]
    public void A_whole_object_names_each_program_it_skips()
    {
        string path = Path.Combine(Paths.RepoRoot, "tests", "Loader", "objects", "mixed_types.o");
        var (code, output, _) = Run("verify", path);
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("program reuseport_prog (section sk_reuseport").And.Contain("program lookup_prog (section sk_lookup"));
        var skipped = output.Split('\n').Where(l => l.StartsWith("skipped program ", StringComparison.Ordinal)).ToList();
        Assert.That(skipped, Has.Count.EqualTo(11), output);
        Assert.That(skipped, Does.Contain("skipped program xdp_prog: section xdp, type Xdp: program type not supported by BpfJit (only SkLookup and SkReuseport)"));
        Assert.That(skipped, Does.Contain("skipped program custom_prog: section custom/dispatcher, type Unspec: the section names no known program type"));
        var (_, json, _) = Run("verify", path, "--json");
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var names = doc.RootElement.GetProperty("skipped").EnumerateArray().Select(e => e.GetProperty("name").GetString()).ToList();
        Assert.That(names, Has.Count.EqualTo(11).And.Contain("sk_msg_prog"));
        Assert.That(doc.RootElement.GetProperty("programs").GetArrayLength(), Is.EqualTo(2));
    }

    /// <summary>The kernel selftest's object: every program, the three SK_REUSEPORT ones too, verifies; none is skipped.</summary>
    [Test]
    public void The_selftest_object_verifies_all_its_programs()
    {
        var (code, output, _) = Run("verify", Path.Combine(Paths.RepoRoot, "tests", "scenarios", "progs", "test_sk_lookup.o"));
        Assert.That(code, Is.EqualTo(0), output);
        foreach (var name in new[] { "reuseport_pass", "reuseport_drop", "select_sock_b", "lookup_pass", "ctx_narrow_access" })
            Assert.That(output, Does.Contain($"program {name} (section"), name);
        Assert.That(output, Does.Not.Contain("skipped program"));
    }

    /// <summary>--type names an assembled program's type: an sk_reuseport_md packet pointer load is an SK_LOOKUP context error.</summary>
    [Test]
    public void The_type_of_an_assembled_program()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bpfjit-rpv-{Environment.ProcessId}.asm");
        File.WriteAllText(path, "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r4, %r2\nadd %r4, 1\njgt %r4, %r3, out\nldxb %r0, [%r2+0]\nout:\nmov %r0, 1\nexit\n");
        try
        {
            var (code, output, _) = Run("verify", path, "--type", "sk_reuseport");
            Assert.That(code, Is.EqualTo(0), output);
            (code, output, _) = Run("verify", path);
            Assert.That(code, Is.EqualTo(1), output);
            Assert.That(output, Does.Contain("invalid bpf_context access off=8 size=8"));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void AnAssemblyErrorNamesTheFile()
    {
        var (code, _, err) = Run("verify", Corpus("redir_port.c"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("redir_port.c: line 1: unknown mnemonic"));
    }
}
