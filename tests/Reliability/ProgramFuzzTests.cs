using BpfJit.Tests.Support;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// The program fuzzer's fixed-seed CI batch (count-bounded, so it is deterministic). Run longer with
/// <c>BPFJIT_FUZZ_COUNT=100000 BPFJIT_FUZZ_SEED=7 dotnet test tests -c Release --filter FullyQualifiedName~ProgramFuzzTests</c>
/// (docs/reliability.md).
/// </summary>
[TestFixture]
public class ProgramFuzzTests
{
    static int Env(string name, int fallback) => int.TryParse(Environment.GetEnvironmentVariable(name), out int v) ? v : fallback;

    [Test]
    [Category(KernelOracle.Category)]
    public void GeneratedProgramsAgreeAcrossEnginesWithoutCheckedFaultsAndNeverAcceptWhatTheKernelRejects()
    {
        int seed = Env("BPFJIT_FUZZ_SEED", 20261125), count = Env("BPFJIT_FUZZ_COUNT", 10000);
        using var fuzzer = new ProgramFuzzer(kernel: Env("BPFJIT_FUZZ_KERNEL", 1) != 0);
        var report = fuzzer.Run(seed, count);
        TestContext.Out.WriteLine($"seed {seed}, count {count}: {report}{(fuzzer.KernelAvailable ? "" : " (kernel oracle unavailable)")}");
        TestContext.Out.WriteLine($"slowest verification: program {report.SlowestVerify.Program}, {report.SlowestVerify.Ms} ms, {report.SlowestVerify.Verdict}");
        if (Env("BPFJIT_FUZZ_VERBOSE", 0) != 0) TestContext.Out.WriteLine(report.SlowestVerify.Code);
        foreach (var (reason, times) in report.Rejections.OrderByDescending(kv => kv.Value).Take(12))
            TestContext.Out.WriteLine($"  rejected x{times}: {reason}");
        foreach (var bug in report.KernelBugs) TestContext.Out.WriteLine($"   kernel internal error (BpfJit accepts and runs it): {bug}");
        foreach (var line in report.KernelOnlyAccepts.GroupBy(l => System.Text.RegularExpressions.Regex.Replace(l[(l.IndexOf(':') + 2)..], "[0-9]+", "N")).OrderByDescending(g => g.Count()).Take(15))
            TestContext.Out.WriteLine($"  kernel-only accept x{line.Count()}: {line.Key}");
        Assert.That(report.Failures, Is.Empty, string.Join("\n----\n", report.Failures.Take(3)));
        KernelOracle.Agrees(report.KernelDiffers.Count == 0, () => $"{report.KernelDiffers.Count} programs BpfJit accepts are rejected by this kernel:\n" + string.Join("\n----\n", report.KernelDiffers.Take(3)));
        Assert.That(report.Accepted, Is.GreaterThan(count / 10), "the generator must produce runnable programs");
        Assert.That(report.Accepted, Is.LessThan(count), "the generator must also produce programs the verifier rejects");
    }

    [Test]
    public void TheMinimiserKeepsJumpTargetsAndLdImm64PairsIntact()
    {
        var code = MapPrograms.Assemble("mov %r0, 0\nlddw %r1, 0x1122334455667788\njeq %r0, 0, skip\nmov %r0, 1\nmov %r0, 2\nskip:\nmov %r0, 3\nexit");
        var small = DeltaMinimiser.Minimise(code, c => c.Any(i => i.IsLdImm64) && c.Any(i => i.IsBranch) && c.Any(i => i.IsExit));
        Assert.That(BpfJit.Frontend.Disassembler.Disassemble(small), Does.Contain("lddw").Or.Contain("0x1122334455667788"));
        var branch = Array.FindIndex(small, i => i.IsBranch);
        Assert.That(branch + 1 + small[branch].Offset, Is.InRange(0, small.Length - 1), "the jump still lands inside the program");
        Assert.That(small.Length, Is.LessThan(code.Length));
        Assert.That(DeltaMinimiser.Remove(code, 2, 3), Is.Null, "removing half of an ld_imm64 is refused");
    }
}
