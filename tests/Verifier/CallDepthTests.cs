using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// Call-frame depth over any call graph (recursion, mutual recursion, cycles through callbacks and through the main
/// program): the two messages the kernel has for it, word for word. A call that opens a ninth frame on a path fails in
/// setup_func_entry with <c>the call stack of 9 frames is too deep</c>; a chain of 8 frames the walk of
/// check_max_stack_depth finds (reached or not) fails with <c>the call stack of 8 frames is too deep !</c>.
/// The corpus compares substrings; this compares the whole error line, with the live kernel's too.
/// </summary>
[TestFixture]
public class CallDepthTests
{
    static IEnumerable<CorpusCase> DepthCases() =>
        CorpusCase.All().Where(c => c.Message?.Contains("frames is too deep", StringComparison.Ordinal) == true);

    static VerifierResult Ours(CorpusCase c) =>
        BpfJit.Verifier.Verifier.Verify(c.Assemble(), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = c.Maps });

    /// <summary>The kernel's error line: the last line of its log before the "processed N insns" summary.</summary>
    static string KernelError(string log)
    {
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int processed = Array.FindLastIndex(lines, l => l.StartsWith("processed ", StringComparison.Ordinal));
        return processed > 0 ? lines[processed - 1] : lines.LastOrDefault() ?? "";
    }

    [Test]
    public void The_corpus_has_both_depth_messages()
    {
        var messages = DepthCases().Select(c => c.Message!).ToList();
        Assert.That(messages, Does.Contain("the call stack of 9 frames is too deep"));
        Assert.That(messages, Does.Contain("the call stack of 8 frames is too deep !"));
    }

    [TestCaseSource(nameof(DepthCases))]
    public void The_error_line_is_exactly_the_recorded_one(CorpusCase c)
    {
        Assert.That(Ours(c).Error, Is.EqualTo(c.Message));
    }

    [TestCaseSource(nameof(DepthCases))]
    [Category(KernelOracle.Category)]
    public void The_error_line_is_the_kernels(CorpusCase c)
    {
        KernelBpf.RequireAvailable();
        var k = KernelBpf.Load(c.Assemble(), []);
        if (!KernelOracle.Agrees(!k.Accepted, () => $"{c}: the kernel accepts", c.CheckedOn ?? KernelOracle.RecordedRelease))
            return;
        Assert.That(Ours(c).Error, Is.EqualTo(KernelError(k.Log)), k.Log);
    }
}
