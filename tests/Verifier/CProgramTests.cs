using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// C programs compiled by clang (tests/Verifier/c, rebuilt by build.sh): real compiler output —
/// narrow loads, 32-bit subregisters, loops, spills — through BpfJit and the kernel.
/// </summary>
[TestFixture]
public class CProgramTests
{
    /// <summary>A compiled program and what the verifier must answer.</summary>
    public sealed record CProgram(string Name, bool Accept, string? Message)
    {
        /// <inheritdoc />
        public override string ToString() => Name;

        /// <summary>The instructions from NAME.bin.</summary>
        public Instruction[] Load() => Decoder.Decode(File.ReadAllBytes(Path.Combine(Dir, Name + ".bin")));
    }

    static string Dir => Path.Combine(Paths.RepoRoot, "tests", "Verifier", "c");

    static IEnumerable<CProgram> Programs()
    {
        string src = File.ReadAllText(Path.Combine(Dir, "sk_lookup_c.c"));
        foreach (Match m in Regex.Matches(src, @"// expect: (?<e>[^\n]*)\nSEC\(""sk_lookup/(?<n>\w+)""\)"))
        {
            string e = m.Groups["e"].Value.Trim();
            bool accept = e == "accept";
            yield return new CProgram(m.Groups["n"].Value, accept, accept ? null : e["reject ".Length..]);
        }
    }

    /// <summary>There are C programs and each has its compiled fixture.</summary>
    [Test]
    public void FixturesExist()
    {
        var all = Programs().ToList();
        Assert.That(all, Has.Count.GreaterThanOrEqualTo(9));
        foreach (var p in all) Assert.That(File.Exists(Path.Combine(Dir, p.Name + ".bin")), p.Name);
    }

    /// <summary>BpfJit's verdict and message.</summary>
    [TestCaseSource(nameof(Programs))]
    public void Verdict(CProgram p)
    {
        var r = BpfJit.Verifier.Verifier.Verify(p.Load(), new VerifierOptions { Helpers = SkLookupTestHelpers.Table });
        Assert.That(r.Accepted, Is.EqualTo(p.Accept), r.Log);
        if (!p.Accept) Assert.That(r.Log, Does.Contain(p.Message));
    }

    /// <summary>The kernel's verdict is the same.</summary>
    [TestCaseSource(nameof(Programs))]
    public void KernelAgrees(CProgram p)
    {
        KernelBpf.RequireAvailable();
        var k = KernelBpf.Load(p.Load(), []);
        Assert.That(k.Accepted, Is.EqualTo(p.Accept), k.Log);
        if (!p.Accept) Assert.That(k.Log, Does.Contain(p.Message));
    }
}
