using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// The exact optimisations every program gets (docs/jit.md, "Optimisations"): small loops unrolled,
/// register liveness. Each shows in the IL listing and keeps the interpreter's result.
/// </summary>
[TestFixture]
public class OptimisationTests
{
    static ulong Interpret(Instruction[] program, ulong r1 = 0) => InterpreterEngine.Instance.Prepare(program, HelperTable.Bench())(r1, 0);

    static readonly string[] s_jumps = ["jne", "jeq", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset"];

    /// <summary>
    /// A counted loop closed by each conditional jump, 64 and 32 bit, register and immediate, with trip
    /// counts that leave through each of the four copies of the unrolled body.
    /// Counting down for the "greater" forms, jne, jeq and jset, up for the "less" forms.
    /// </summary>
    [Test]
    public void UnrolledLoopsKeepEveryExitCondition(
        [ValueSource(nameof(s_jumps))] string jump, [Values("", "32")] string width, [Values(false, true)] bool register)
    {
        bool up = jump is "jlt" or "jle" or "jslt" or "jsle";
        int limit = jump switch { "jne" => 0, "jset" => 8, "jeq" => 5, _ => up ? 9 : 3 };
        foreach (long start in new long[] { 1, 2, 3, 4, 5, 6, 7, 10 })
        {
            string bound = register ? "%r2" : limit.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var program = Assembler.Assemble($"""
                mov %r0, 0
                mov %r1, {start}
                mov %r2, {limit}
                loop:
                add %r0, %r1
                mul %r0, 3
                {(up ? "add" : "sub")} %r1, 1
                {jump}{width} %r1, {bound}, loop
                exit
                """);
            var compiled = JitCompiler.Compile(program, HelperTable.Bench());
            Assert.That(compiled.GetIlListing(), Does.Contain("; loop unrolled 4 times"));
            Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)), $"{jump}{width} {bound}, start {start}");
        }
    }

    [Test]
    public void ASingleBlockLoopIsUnrolled()
    {
        var program = Assembler.Assemble("""
            mov %r0, 0
            mov %r1, 101
            loop:
            add %r0, %r1
            sub %r1, 1
            jne %r1, 0, loop
            exit
            """);
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        string il = compiled.GetIlListing();
        Assert.That(il, Does.Contain("; loop unrolled 4 times: exit test between copies"));
        Assert.That(il.Split("; 2: r0 += r1").Length - 1, Is.EqualTo(4), "the body appears four times");
        Assert.That(compiled.Run(), Is.EqualTo(5151UL));
    }

    [Test]
    public void RegistersNoPathReadsAreNotSetOrStored()
    {
        var program = Assembler.Assemble("""
            mov %r5, 9
            mov %r0, %r1
            add %r0, 2
            exit
            """);
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        string il = compiled.GetIlListing();
        Assert.That(il, Does.Contain("; r5 is never read afterwards: not emitted"));
        Assert.That(il, Does.Not.Contain("stloc.0 // r0\n; 0:"), "r0 is written before it is read: the prologue leaves it");
        Assert.That(il.Split("; 0:")[0], Does.Not.Contain("stloc.0"));
        Assert.That(compiled.Run(40), Is.EqualTo(42UL));
    }
}
