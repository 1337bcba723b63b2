using System.Globalization;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Stack slots held in IL locals (docs/jit.md, "Optimisations"): a program whose only uses of r10 are loads
/// and stores at constant offsets within one 8-byte slot gets no stack block, each slot a local; any other
/// use of r10 keeps the stack in memory. Either way the result is the interpreter's.
/// </summary>
[TestFixture]
public class StackSlotTests
{
    static ulong Interpret(Instruction[] program, ulong r1 = 0) => InterpreterEngine.Instance.Prepare(program, HelperTable.Bench())(r1, 0);

    /// <summary>../shared/bench's stack_loop: a store and two loads of one slot per iteration.</summary>
    const string StackLoop = """
        mov %r0, 0
        mov %r1, 1000
        loop:
        stxdw [%r10-8], %r1
        ldxdw %r2, [%r10-8]
        add %r0, %r2
        ldxb %r3, [%r10-8]
        add %r0, %r3
        sub %r1, 1
        jne %r1, 0, loop
        exit
        """;

    [Test]
    public void TheStackLoopSlotIsALocalAndTheProgramHasNoStack()
    {
        var compiled = JitCompiler.Compile(Assembler.Assemble(StackLoop), HelperTable.Bench());
        string il = compiled.GetIlListing();
        Assert.That(il, Does.Contain("stack: slots in locals (fp_8)"));
        Assert.That(il, Does.Contain("; stack slot r10 - 8 held in local fp_8"));
        Assert.That(il, Does.Not.Contain("stind").And.Not.Contain("ldind"), "no memory access is left");
        Assert.That(compiled.StackFrames, Is.Zero);
        Assert.That(compiled.Run(), Is.EqualTo(0x98b28UL));
    }

    /// <summary>Any use of r10 other than as a load's or store's base lets a pointer to the stack out: it stays in memory.</summary>
    [TestCase("mov %r2, %r10\nstxdw [%r2-16], %r1", TestName = "r10 copied")]
    [TestCase("jeq %r10, 0, out\nout:", TestName = "r10 compared")]
    [TestCase("stxdw [%r10-16], %r10", TestName = "r10 stored")]
    [TestCase("ldxdw %r4, [%r10-12]", TestName = "A load across two slots")]
    [TestCase("stxw [%r10-4], %r1\nstxh [%r10-2], %r1\nstxdw [%r10-16], %r1\nstxdw [%r10-24], %r1\nstxdw [%r10-32], %r1\nstxdw [%r10-40], %r1\nstxdw [%r10-48], %r1\nstxdw [%r10-56], %r1\nstxdw [%r10-64], %r1\nstxdw [%r10-72], %r1",
        TestName = "More slots than are kept in locals")]
    [TestCase("stxdw [%r10+0], %r1", TestName = "A store above the frame")]
    public void TheStackStaysInMemoryWhenItCanEscape(string code)
    {
        var program = Assembler.Assemble($"""
            lddw %r1, 0x1122334455667788
            stxdw [%r10-8], %r1
            {code}
            ldxdw %r0, [%r10-8]
            exit
            """);
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        string il = compiled.GetIlListing();
        Assert.That(il, Does.Not.Contain("held in local"), il);
        Assert.That(compiled.StackFrames, Is.EqualTo(1));
        if (!code.Contains("+0", StringComparison.Ordinal)) Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)));
    }

    /// <summary>
    /// Random stores (register and immediate, every width, every offset a width fits in a slot) and loads
    /// (every width, zero- and sign-extending) over four slots, read back at the end: the slots in locals
    /// give the interpreter's bytes.
    /// </summary>
    [Test]
    public void NarrowAccessesInLocalSlotsAgreeWithTheInterpreterOnRandomPrograms()
    {
        var rng = new Random(20261207);
        string[] widths = ["b", "h", "w", "dw"];
        for (int n = 0; n < 600; n++)
        {
            var lines = new List<string>();
            for (int r = 1; r <= 4; r++) lines.Add($"lddw %r{r}, 0x{rng.NextInt64():x}");
            for (int k = 0; k < 12; k++)
            {
                int w = rng.Next(4), size = 1 << w;
                int offset = -8 * rng.Next(1, 5) + size * rng.Next(8 / size);
                string at = offset.ToString(CultureInfo.InvariantCulture);
                lines.Add(rng.Next(3) switch
                {
                    0 => $"stx{widths[w]} [%r10{at}], %r{rng.Next(1, 5)}",
                    1 => $"st{widths[w]} [%r10{at}], {rng.Next(int.MinValue, int.MaxValue)}",
                    _ => $"ldx{(w < 3 && rng.Next(2) == 0 ? "s" : "")}{widths[w]} %r{rng.Next(1, 5)}, [%r10{at}]",
                });
            }
            lines.Add("mov %r0, 0");
            for (int slot = 1; slot <= 4; slot++) lines.Add($"ldxdw %r5, [%r10-{8 * slot}]\nxor %r0, %r5\nrsh %r0, 3");
            lines.Add("add %r0, %r1\nadd %r0, %r2\nadd %r0, %r3\nadd %r0, %r4\nexit");
            var program = Assembler.Assemble(string.Join("\n", lines));
            var compiled = JitCompiler.Compile(program, HelperTable.Bench());
            Assert.That(compiled.GetIlListing(), Does.Contain("held in local"));
            Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)), string.Join("\n", lines));
        }
    }

    /// <summary>A spill and fill of the loop's accumulator: the fill is on its dependency chain, a register move in a local.</summary>
    [Test]
    public void ASpilledAccumulatorIsFilledFromItsLocal()
    {
        var program = Assembler.Assemble("""
            mov %r0, 7
            mov %r1, 100
            loop:
            stxdw [%r10-16], %r0
            ldxdw %r0, [%r10-16]
            mul %r0, 3
            stxw [%r10-4], %r0
            ldxsw %r0, [%r10-4]
            add %r0, %r1
            sub %r1, 1
            jne %r1, 0, loop
            exit
            """);
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        Assert.That(compiled.GetIlListing(), Does.Contain("stack: slots in locals (fp_16, fp_8)"));
        Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)));
    }
}
