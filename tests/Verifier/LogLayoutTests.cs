using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>The level-2 log has the kernel's layout: the same instruction lines, branch resumes and statistics line.</summary>
[TestFixture]
public partial class LogLayoutTests
{
    [GeneratedRegex(@"^(\d+): \(([0-9a-f]{2})\)")]
    private static partial Regex InsnLine();

    [GeneratedRegex(@"^from \d+ to \d+: ")]
    private static partial Regex FromLine();

    [GeneratedRegex(@"^processed (\d+) insns \(limit 1000000\) max_states_per_insn \d+ total_states \d+ peak_states \d+ mark_read \d+$")]
    private static partial Regex StatsLine();

    static readonly string[] s_programs =
    [
        "ldxw %r2, [%r1+8]\nand %r2, 1\nmov %r0, %r2\nexit",
        "ldxw %r2, [%r1+8]\nmov %r0, 0\njeq %r2, 2, l\nmov %r0, 1\nl:\nexit",
        "stdw [%r10-8], 0\nldxw %r2, [%r1+60]\njgt %r2, 100, big\nmov %r0, 1\nexit\nbig:\nldxdw %r0, [%r10-8]\nexit",
    ];

    /// <summary>The structure of a log: the first state line, the instruction lines (index and opcode), the branch resumes, the statistics.</summary>
    static (string First, List<string> Insns, List<string> Froms, string Processed) Structure(string log)
    {
        var lines = log.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
        var insns = lines.Select(l => InsnLine().Match(l)).Where(m => m.Success).Select(m => m.Value).ToList();
        var froms = lines.Where(l => FromLine().IsMatch(l)).Select(l => l[..l.IndexOf(':', StringComparison.Ordinal)]).ToList();
        var stats = lines.Select(l => StatsLine().Match(l)).LastOrDefault(m => m.Success);
        var head = lines.TakeWhile(l => !l.StartsWith("0: (", StringComparison.Ordinal))
            .Where(l => l.StartsWith("func#", StringComparison.Ordinal) || l.StartsWith("0: R", StringComparison.Ordinal) || l == "Live regs before insn:");
        return (string.Join("|", head), insns, froms, stats?.Groups[1].Value ?? "(no statistics line)");
    }

    [TestCaseSource(nameof(s_programs))]
    [Category(KernelOracle.Category)]
    public void Level2MatchesTheKernelsLayout(string source)
    {
        var code = Assembler.Assemble(source);
        var ours = BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, LogLevel = 2 });
        Assert.That(ours.Accepted, Is.True, ours.Log);
        var mine = Structure(ours.Log);
        Assert.That(mine.First, Is.EqualTo("func#0 @0|Live regs before insn:|0: R1=ctx() R10=fp0"));
        Assert.That(ours.Log, Does.Match(@"\n\d: \(61\) r2 = \*\(u32 \*\)\(r1 \+ \d+\) +; R1=ctx\(\) R2=scalar\("), "the instruction line, padded, then the registers it touched");

        KernelBpf.RequireAvailable();
        var kernel = KernelBpf.Load(code, [], logLevel: 2);
        if (!KernelOracle.Agrees(kernel.Accepted, () => "the kernel rejects\n" + kernel.Log)) return;
        var theirs = Structure(kernel.Log);
        // The layout and the counts are the kernel build's: another build may print them differently.
        var differences = new List<string>();
        if (mine.First != theirs.First) differences.Add($"first lines: '{mine.First}' vs '{theirs.First}'");
        if (!mine.Insns.SequenceEqual(theirs.Insns)) differences.Add("instruction lines in another order");
        if (!mine.Froms.SequenceEqual(theirs.Froms)) differences.Add("branch resumes differ");
        if (mine.Processed != theirs.Processed) differences.Add($"processed instruction count {mine.Processed} vs {theirs.Processed}");
        KernelOracle.Agrees(differences.Count == 0, () => string.Join("; ", differences) + "\n" + ours.Log + "\n---\n" + kernel.Log);
    }
}
