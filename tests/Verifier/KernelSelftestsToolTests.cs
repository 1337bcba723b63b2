using BpfJit.KernelSelftests;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// tools/kernel-selftests (the kernel's verifier selftests against BpfJit, docs/verifier.md) tested
/// without a Linux source tree: its comparison core on a small committed object written in the
/// selftests' style (tests/Verifier/selftests/verifier_sample.c), and its classification and report
/// on made-up verdicts.
/// </summary>
[TestFixture]
public class KernelSelftestsToolTests
{
    static string Sample => Path.Combine(Paths.RepoRoot, "tests", "Verifier", "selftests", "verifier_sample.o");

    static void RequireKernelAndLibbpf()
    {
        KernelBpf.RequireAvailable();
        if (!Libbpf.Available) Assert.Ignore("libbpf unavailable: " + Libbpf.UnavailableReason);
    }

    /// <summary>Every program of the sample is loaded by both sides and classified as expected.</summary>
    [Test]
    public void SampleObjectIsComparedProgramByProgram()
    {
        RequireKernelAndLibbpf();
        var results = Comparison.CompareObject(Sample).ToDictionary(r => r.Program);
        Assert.That(results.Keys, Is.EquivalentTo(new[] { "accepts_return_zero", "rejects_uninit_register", "accepts_map_value_load", "reads_map_struct_field" }));
        Assert.Multiple(() =>
        {
            Assert.That(results["accepts_return_zero"].Kernel.Outcome, Is.EqualTo(KernelOutcome.Accepted));
            Assert.That(results["accepts_return_zero"].Outcome, Is.EqualTo(Outcome.Agree));
            Assert.That(results["accepts_map_value_load"].Outcome, Is.EqualTo(Outcome.Agree), results["accepts_map_value_load"].Kernel.Log);
            var uninit = results["rejects_uninit_register"];
            Assert.That(uninit.Kernel.Outcome, Is.EqualTo(KernelOutcome.Rejected));
            Assert.That(uninit.Kernel.LastLines(1).Single(), Does.Contain("R2 !read_ok"));
            Assert.That(uninit.BpfJit.Error, Does.Contain("R2 !read_ok"));
            Assert.That(uninit.Outcome, Is.EqualTo(Outcome.Agree));
            // Deliberate difference 2 of docs/verifier.md: the kernel (root) reads the map's kernel struct.
            var mapRead = results["reads_map_struct_field"];
            Assert.That(mapRead.Outcome, Is.EqualTo(Outcome.OverStrict), mapRead.Kernel.Log);
            Assert.That(mapRead.BpfJit.Error, Does.Contain("invalid mem access 'map_ptr'"));
            Assert.That(results.Values.Select(r => r.Section), Is.EquivalentTo(new[] { "socket", "socket", "tc", "tc" }));
        });

        var text = new StringWriter();
        Report.Write(text, results.Values.ToList(), [("verifier_broken.c", "error: unknown opcode")]);
        Assert.That(text.ToString(), Does.Contain("agree 3, unsound 0, over-strict 1, not loadable by BpfJit 0"));
        Assert.That(text.ToString(), Does.Contain("verifier_sample.o reads_map_struct_field (SEC \"tc\"): kernel accepts, BpfJit rejects"));
        Assert.That(text.ToString(), Does.Contain("verifier_broken.c: error: unknown opcode"));
    }

    static readonly KernelVerdict s_kernelAccepts = new(KernelOutcome.Accepted, 0, "processed 2 insns", "");
    static readonly KernelVerdict s_kernelRejects = new(KernelOutcome.Rejected, 13, "0: (bf) r0 = r2\nR2 !read_ok\nprocessed 1 insns (limit 1000000)\n", "");
    static readonly KernelVerdict s_noKernel = new(KernelOutcome.NotLoaded, 0, "", "libbpf: map 'arena': failed to create: Operation not permitted(-1)");
    static readonly BpfJitVerdict s_accepts = new(true, true, "", "");
    static readonly BpfJitVerdict s_rejects = new(true, false, "R2 !read_ok", "");

    /// <summary>Each pair of verdicts lands in its class; a missing kernel verdict is never counted as agreement or disagreement.</summary>
    [Test]
    public void VerdictPairsAreClassified()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Comparison.Classify(s_kernelAccepts, s_accepts), Is.EqualTo(Outcome.Agree));
            Assert.That(Comparison.Classify(s_kernelRejects, s_rejects), Is.EqualTo(Outcome.Agree));
            Assert.That(Comparison.Classify(s_kernelRejects, s_accepts), Is.EqualTo(Outcome.Unsound));
            Assert.That(Comparison.Classify(s_kernelAccepts, s_rejects), Is.EqualTo(Outcome.OverStrict));
            Assert.That(Comparison.Classify(s_kernelAccepts, BpfJitVerdict.Refused("map-in-map is not supported")), Is.EqualTo(Outcome.NotLoadable));
            Assert.That(Comparison.Classify(s_noKernel, s_accepts), Is.EqualTo(Outcome.KernelNotLoaded));
            Assert.That(Comparison.Classify(s_noKernel, BpfJitVerdict.Refused("x")), Is.EqualTo(Outcome.KernelNotLoaded));
        });
    }

    /// <summary>The report lists an unsound program with BpfJit's verdict and the kernel's last log lines, and groups refusals by cause.</summary>
    [Test]
    public void ReportListsDisagreementsAndGroupsRefusals()
    {
        var results = new List<ProgramComparison>
        {
            new("verifier_a.o", "lets_r2_through", "socket", s_kernelRejects, s_accepts, Outcome.Unsound),
            new("verifier_a.o", "fine", "socket", s_kernelAccepts, s_accepts, Outcome.Agree),
            new("verifier_b.o", "inner1", "tc", s_kernelRejects, BpfJitVerdict.Refused("verifier_b.o: section .maps: map 'outer': map-in-map ('values' member) is not supported"), Outcome.NotLoadable),
            new("verifier_c.o", "inner2", "tc", s_kernelAccepts, BpfJitVerdict.Refused("verifier_c.o: section .maps: map 'other': map-in-map ('values' member) is not supported"), Outcome.NotLoadable),
            new("verifier_d.o", "arena", "tc", s_noKernel, s_accepts, Outcome.KernelNotLoaded),
        };
        var text = new StringWriter();
        Report.Write(text, results, []);
        string s = text.ToString();
        Assert.Multiple(() =>
        {
            Assert.That(s, Does.Contain("== UNSOUND: BpfJit accepts, the kernel rejects (1)"));
            Assert.That(s, Does.Contain("verifier_a.o lets_r2_through (SEC \"socket\"): kernel rejects (errno 13), BpfJit accepts"));
            Assert.That(s, Does.Contain("    kernel: R2 !read_ok"));
            Assert.That(s, Does.Not.Contain("kernel: processed"), "the statistics line is not a reason");
            Assert.That(s, Does.Contain("    2  map '…': map-in-map ('…' member) is not supported  (kernel accepts 1, rejects 1)"));
            Assert.That(s, Does.Contain("in verifier_b.o, verifier_c.o"));
            Assert.That(s, Does.Contain("    1  map '…': failed to create: Operation not permitted(-N)"));
            Assert.That(s, Does.Contain("agree 1, unsound 1, over-strict 0, not loadable by BpfJit 2, BpfJit verifier crashes 0, no kernel verdict 1"));
            Assert.That(s, Does.Contain("verdict agreement where both loaded: 50.0% (1/2)"));
        });
    }
}
