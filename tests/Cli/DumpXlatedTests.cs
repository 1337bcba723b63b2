using System.Text.Json;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary><c>dump --xlated</c>: the program as the engine compiles it, maps by name, dead code marked, the verifier's facts.</summary>
public class DumpXlatedTests
{
    // A branch on a frozen .rodata constant that is 0, so slots 9-11 are dead (tests/Cli/xlated/dead_code.c).
    static readonly string DeadCode = Repo("tests", "Cli", "xlated", "dead_code.o");

    static string Line(string listing, int slot) =>
        listing.Split('\n').Single(l => l.StartsWith($"{slot,4}: (", StringComparison.Ordinal));

    [Test]
    public void DeadCodeIsMarkedAndLiveCodeCarriesTheVerifiersFacts()
    {
        var (code, output, err) = Run("dump", DeadCode, "--xlated");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.StartWith("; dead_code: 30 slots as the engine compiles them (maps bound, ctx loads rewritten); 3 dead"));
        foreach (int dead in new[] { 9, 10, 11 })
            Assert.That(Line(output, dead), Does.EndWith("; dead: no path reaches it, not compiled"));
        Assert.That(Line(output, 8), Does.Contain("if r3 == 0x0 goto +3").And.Contain("r2=map_value r3=scalar"));
        Assert.That(Line(output, 1), Does.EndWith("; r1=ctx r6=ctx r10=fp ; ctx load local_port"));
        Assert.That(Line(output, 5), Does.Contain("r2 = map_value[.rodata]+0 ll"));
        Assert.That(Line(output, 14), Does.Contain("r1 = map[counts] ll"));
        Assert.That(Line(output, 16), Does.Contain("call bpf_map_lookup_elem#1").And.EndWith("; map counts"));
        Assert.That(Line(output, 25), Does.Contain("r3 /= r2").And.EndWith("; divisor non-zero"));
        Assert.That(Line(output, 28), Does.EndWith("; value of counts"));
        Assert.That(output, Does.Not.Contain("  6: ("), "the second slot of an ld_imm64 is not listed");
    }

    [Test]
    public void TheDeadSlotsAreTheOnesTheJitLeavesOut()
    {
        var json = Json("dump", DeadCode, "--xlated", "--il");
        var dead = json.GetProperty("xlated").EnumerateArray().Where(l => l.GetProperty("dead").GetBoolean()).Select(l => l.GetProperty("slot").GetInt32()).ToList();
        var notEmitted = json.GetProperty("il").GetProperty("blocks").EnumerateArray()
            .Where(b => b.GetProperty("slot").ValueKind == JsonValueKind.Number && b.GetProperty("il").EnumerateArray().Any(i => i.GetString()!.Contains("unreachable, not emitted", StringComparison.Ordinal)))
            .Select(b => b.GetProperty("slot").GetInt32()).ToList();
        Assert.That(dead, Is.EqualTo(new[] { 9, 10, 11 }));
        Assert.That(notEmitted, Is.EqualTo(dead));
    }

    [Test]
    public void JsonCarriesRegistersAndNotes()
    {
        var json = Json("dump", Repo("tests", "programs", "redir_port.o"), "--xlated");
        Assert.That(json.TryGetProperty("il", out _), Is.False, "--xlated alone asks for no IL");
        var lines = json.GetProperty("xlated").EnumerateArray().ToList();
        Assert.That(lines[0].GetProperty("text").GetString(), Is.EqualTo("r7 = r1"));
        Assert.That(lines[0].GetProperty("registers").GetProperty("r1").GetString(), Is.EqualTo("ctx"));
        var lookup = lines.Single(l => l.GetProperty("text").GetString() == "r1 = map[redir_map] ll");
        Assert.That(lookup.GetProperty("opcode").GetString(), Is.EqualTo("18"));
        var ctxLoad = lines.Single(l => l.GetProperty("slot").GetInt32() == 4);
        Assert.That(ctxLoad.GetProperty("notes")[0].GetString(), Is.EqualTo("ctx load local_port"));
    }

    [Test]
    public void AProgramWithoutAnObjectIsAUsageError() =>
        AssertBadInput(Run("dump", Repo("examples", "asm", "ipv4_in_subnet.data"), "--xlated"), "--xlated needs an ELF object");
}
