using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>Precision tracking: scalars nothing reads exactly do not split states at prune points.</summary>
[TestFixture]
public class PrecisionTests
{
    static CorpusCase Case(string name) => CorpusCase.All().Single(c => c.File == "15_precision.txt" && c.Name == name);

    static VerifierResult Run(CorpusCase c, bool precision) =>
        new Checker(c.Assemble(), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = c.Maps }, precision: precision).Run();

    [Test]
    public void ImpreciseScalarsPruneAndTheKernelsBudgetHolds()
    {
        // Twenty diamonds each setting another bit of r6, which only the exit code could read (it does not):
        // compared exactly, the 2^20 values of r6 never prune and the budget runs out; the kernel accepts it.
        var c = Case("precision: twenty diamonds setting a scalar no one reads precisely");
        var precise = Run(c, precision: true);
        var exact = Run(c, precision: false);
        Assert.That(precise.Accepted, Is.True, precise.Log);
        Assert.That(exact.Accepted, Is.False);
        Assert.That(exact.Error, Does.StartWith("BPF program is too large"));
        Assert.That(precise.InsnsProcessed, Is.LessThan(200));
    }

    [Test]
    public void TheInstructionCountDropsWhereBothAccept()
    {
        // Six diamonds, then an access through a constant: both accept, precision processes fewer instructions.
        // Each diamond is long enough (two jumps and eight instructions apart) for the kernel's heuristic to add
        // a checkpoint at each join.
        string src = string.Join("\n", Enumerable.Range(0, 6).SelectMany(i => new[] { $"jset %r2, {1 << i}, l{i}", $"or %r6, {1 << i}", $"l{i}:", "mov %r7, 1", "mov %r7, 2", "mov %r7, 3", "ja 0" }));
        var c = new CorpusCase("inline", "six diamonds", "ldxw %r2, [%r1+8]\nmov %r6, 0\n" + src + "\nmov %r0, 1\nexit", [], true, null, null);
        var precise = Run(c, precision: true);
        var exact = Run(c, precision: false);
        Assert.That(precise.Accepted && exact.Accepted, Is.True);
        // 56 against 194; checkpoints follow the kernel's (after two jumps and eight instructions), which processes 44.
        Assert.That(precise.InsnsProcessed, Is.LessThan(exact.InsnsProcessed / 3), $"{precise.InsnsProcessed} vs {exact.InsnsProcessed}");
    }

    [TestCase("precision: a scalar used as a map value offset after the diamonds stays exact")]
    [TestCase("precision: a spilled scalar filled and used as an offset stays exact")]
    public void AScalarUsedAsAnOffsetIsComparedOnEveryPath(string name)
    {
        // The first path has r6 = 0; the later ones reach the checkpoints with other values and must not be pruned.
        var r = Run(Case(name), precision: true);
        Assert.That(r.Accepted, Is.False);
        Assert.That(r.Error, Does.Contain("value_size=63 off=63 size=1"));
    }
}
