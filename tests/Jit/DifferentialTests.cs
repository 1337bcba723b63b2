using System.Diagnostics;
using System.Runtime.InteropServices;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Property-based differential test: random valid programs (<see cref="RandomProgramGenerator"/>)
/// run on the interpreter and on the JIT must give the same r0 (or the same error) and leave the
/// same memory, which holds the dumped registers and stacks. The seed is fixed so CI is
/// reproducible; <c>BPFJIT_SEED</c> picks another one, <c>BPFJIT_DIFF_COUNT</c> the number of programs.
/// A failure prints the seed, the program's index and seed, and its disassembly.
/// </summary>
[TestFixture]
public class DifferentialTests
{
    const int DefaultSeed = 20261125;
    const int DefaultCount = 3000;

    sealed record Outcome(ulong? R0, string? Error, byte[] Memory);

    [Test]
    public void JitAgreesWithInterpreterOnRandomPrograms()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("BPFJIT_SEED"), out int s) ? s : DefaultSeed;
        int count = int.TryParse(Environment.GetEnvironmentVariable("BPFJIT_DIFF_COUNT"), out int n) ? n : DefaultCount;
        var helpers = HelperTable.Bench();
        var watch = Stopwatch.StartNew();
        int errors = 0, slots = 0, withCalls = 0;
        for (int i = 0; i < count; i++)
        {
            int programSeed = ProgramSeed(seed, i);
            var (program, memory) = RandomProgramGenerator.Generate(programSeed);
            slots += program.Length;
            if (program.Any(x => x.IsCall && x.Src == (byte)CallKind.Local)) withCalls++;
            var expected = Run(InterpreterEngine.Instance, program, memory, helpers);
            var actual = Run(JitEngine.Instance, program, memory, helpers);
            if (expected.Error != null) errors++;
            string? difference = Compare(expected, actual);
            if (difference != null)
                Assert.Fail($"seed {seed} (BPFJIT_SEED={seed}), program #{i} (program seed {programSeed}): {difference}\n" +
                            Disassembler.Disassemble(program));
        }
        TestContext.Out.WriteLine($"{count} programs ({slots} slots, {withCalls} with local calls, {errors} ending in an error) agreed in {watch.Elapsed.TotalSeconds:F1} s; seed {seed}");
        Assert.That(errors, Is.LessThan(count / 2), "the generator should mostly produce programs that run to the end");
        Assert.That(withCalls, Is.GreaterThan(count / 4), "the generator should often produce local calls");
    }

    /// <summary>
    /// The seed of program <paramref name="index"/>: a fixed mix (HashCode.Combine is randomised per
    /// process, so it would make every run test different programs).
    /// </summary>
    static int ProgramSeed(int seed, int index)
    {
        ulong x = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)index;
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 29;
        return (int)x;
    }

    [Test]
    public void GeneratorIsDeterministicAndValid()
    {
        var (a, ma) = RandomProgramGenerator.Generate(42);
        var (b, mb) = RandomProgramGenerator.Generate(42);
        Assert.That(a, Is.EqualTo(b));
        Assert.That(ma, Is.EqualTo(mb));
        for (int i = 0; i < 200; i++)
        {
            var (p, _) = RandomProgramGenerator.Generate(i);
            Assert.DoesNotThrow(() => ProgramChecks.CheckRunnable(p, HelperTable.Bench()), Disassembler.Disassemble(p));
        }
    }

    /// <summary>The comparison can fail: a one-bit change in memory or r0 is reported.</summary>
    [Test]
    public void ComparisonDetectsDifferences()
    {
        var baseline = new Outcome(1, null, [1, 2, 3]);
        Assert.That(Compare(baseline, baseline with { Memory = [1, 2, 3] }), Is.Null);
        Assert.That(Compare(baseline, baseline with { R0 = 2 }), Does.Contain("r0"));
        Assert.That(Compare(baseline, baseline with { Memory = [1, 2, 2] }), Does.Contain("memory byte 2"));
        Assert.That(Compare(baseline, new Outcome(null, "boom", [1, 2, 3])), Does.Contain("error"));
    }

    static unsafe Outcome Run(IBpfEngine engine, Instruction[] program, byte[] initial, HelperTable helpers)
    {
        byte* memory = (byte*)NativeMemory.AlignedAlloc((nuint)initial.Length, 16);
        try
        {
            initial.CopyTo(new Span<byte>(memory, initial.Length));
            // The interpreter touches only registered memory (the programs' input block is their context).
            BpfJit.Runtime.Checked.MemoryRegions.Register((ulong)memory, initial.Length, BpfJit.Runtime.Checked.MemoryRegionKind.Context);
            ulong? r0 = null;
            string? error = null;
            try
            {
                r0 = engine.Prepare(program, helpers)((ulong)memory, (ulong)initial.Length);
            }
            catch (BpfException e)
            {
                error = e.Message;
            }
            return new Outcome(r0, error, new Span<byte>(memory, initial.Length).ToArray());
        }
        finally
        {
            BpfJit.Runtime.Checked.MemoryRegions.Unregister((ulong)memory);
            NativeMemory.AlignedFree(memory);
        }
    }

    static string? Compare(Outcome expected, Outcome actual)
    {
        if (expected.Error != actual.Error)
            return $"error: interpreter '{expected.Error ?? "none"}', jit '{actual.Error ?? "none"}'";
        if (expected.R0 != actual.R0)
            return $"r0: interpreter 0x{expected.R0:x}, jit 0x{actual.R0:x}";
        for (int i = 0; i < expected.Memory.Length; i++)
            if (expected.Memory[i] != actual.Memory[i])
                return $"memory byte {i} ({Region(i)}): interpreter 0x{expected.Memory[i]:x2}, jit 0x{actual.Memory[i]:x2}";
        return null;
    }

    static string Region(int offset) => offset switch
    {
        < RandomProgramGenerator.RegisterDump => "input data",
        < RandomProgramGenerator.StackDump => $"register r{(offset - RandomProgramGenerator.RegisterDump) / 8}",
        _ => $"stack {(offset - RandomProgramGenerator.StackDump < 512 ? "main frame" : "first callee frame")} [r10{offset - RandomProgramGenerator.StackDump - 512:+0;-0}]",
    };
}
