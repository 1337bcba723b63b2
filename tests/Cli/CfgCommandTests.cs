using System.Text.Json;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

public class CfgCommandTests
{
    static readonly string Subprogs = Repo("tests", "programs", "subprog_calls.o");

    [Test]
    public void BlocksCoverTheProgramAndCarryEntryTypes()
    {
        var json = Json("cfg", Repo("tests", "programs", "dispatcher.o"), "--map", "destinations:257:8:1024");
        Assert.That(json.GetProperty("accepted").GetBoolean(), Is.True);
        var blocks = json.GetProperty("blocks").EnumerateArray().ToList();
        Assert.That(blocks, Has.Count.GreaterThan(3));
        // Blocks tile the program: each starts where the previous ended.
        for (int i = 1; i < blocks.Count; i++)
            Assert.That(blocks[i].GetProperty("start").GetInt32(), Is.EqualTo(blocks[i - 1].GetProperty("end").GetInt32()));
        var entry = blocks[0].GetProperty("entry");
        Assert.That(entry.GetProperty("r1").GetString(), Is.EqualTo("ctx"));
        Assert.That(entry.GetProperty("r10").GetString(), Is.EqualTo("fp"));
        foreach (var b in blocks)
            foreach (var e in b.GetProperty("edges").EnumerateArray())
                Assert.That(e.GetProperty("block").GetInt32(), Is.InRange(0, blocks.Count - 1));
        // A conditional jump's block has a true and a false edge.
        Assert.That(blocks.Any(b => b.GetProperty("edges").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).OrderBy(k => k)
            .SequenceEqual(["false", "true"])), Is.True);
    }

    [Test]
    public void BpfToBpfCallsAreCallEdgesToTheCalleeWithItsOwnEntryTypes()
    {
        var json = Json("cfg", Subprogs, "--program", "subprog_hash");
        var blocks = json.GetProperty("blocks").EnumerateArray().ToList();
        var call = blocks[0].GetProperty("edges").EnumerateArray().Single(e => e.GetProperty("kind").GetString() == "call");
        var callee = blocks[call.GetProperty("block").GetInt32()];
        Assert.That(callee.GetProperty("entry").GetProperty("r1").GetString(), Is.EqualTo("scalar"));
        Assert.That(callee.GetProperty("entry").TryGetProperty("r6", out _), Is.False, "a callee starts with its own frame");
    }

    [Test]
    public void DotTextGoesToStdout()
    {
        var (code, output, _) = Run("cfg", Subprogs, "--program", "subprog_hash");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.StartWith("digraph \"subprog_hash\"").And.Contain("entry: r1=ctx r10=fp").And.Contain("[label=\"call\""));
    }

    [Test]
    public void SvgWithGraphvizOrDotFileWithANote()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"bpfjit-cfg-{Guid.NewGuid():n}");
        Directory.CreateDirectory(dir);
        string svg = Path.Combine(dir, "g.svg");
        var (code, _, err) = Run("cfg", Subprogs, "-o", svg);
        Assert.That(code, Is.EqualTo(0), err);
        bool haveDot = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "dot")));
        if (haveDot)
        {
            Assert.That(File.ReadAllText(svg), Does.Contain("<svg"));
        }
        else
        {
            Assert.That(File.Exists(svg), Is.False);
            Assert.That(File.ReadAllText(Path.Combine(dir, "g.dot")), Does.StartWith("digraph"));
            Assert.That(err, Does.Contain("Graphviz 'dot' is not on PATH").And.Contain("g.dot"));
        }
    }

    [Test]
    public void ARejectedProgramIsDrawnUpToTheErrorAndExitsOne()
    {
        string path = Temp(".asm", "ldxw %r0, [%r1+12]\njeq %r0, 6, +1\nldxdw %r0, [%r2+0]\nmov %r0, 1\nexit\n");
        var (code, output, err) = Run("cfg", path, "--json");
        Assert.That(code, Is.EqualTo(1), err);
        var json = JsonDocument.Parse(output).RootElement;
        Assert.That(json.GetProperty("accepted").GetBoolean(), Is.False);
        Assert.That(json.GetProperty("error").GetString(), Does.StartWith("insn 2:"));
        Assert.That(err, Does.Contain("verifier rejected"));
    }

    [Test]
    public void BadInput()
    {
        AssertBadInput(Run("cfg", "nope.o"), "nope.o: no such file");
        AssertBadInput(Run("cfg", Subprogs, "--program", "nope"), "subprog_calls.o", "no program named 'nope'");
        AssertBadInput(Run("cfg", Temp(".asm", "frob r1\n")), "unknown mnemonic");
        // ja +5 from slot 0 of a 2-slot program: raw bytecode, so no assembler stands in the way.
        string raw = Temp(".bin", new byte[] { 0x05, 0, 5, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0 });
        AssertBadInput(Run("cfg", raw), raw, "instruction 0: target 6 is outside the program (2 slots)");
    }
}
