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

    /// <summary>The stack words a merge test reads back (r0 = their xor), so every byte written counts.</summary>
    const string ReadBack = """
        ldxdw %r0, [%r10-8]
        ldxdw %r8, [%r10-16]
        xor %r0, %r8
        ldxdw %r8, [%r10-24]
        xor %r0, %r8
        exit
        """;

    /// <summary>clang's store of a u32 into a packed struct at an odd offset: four byte stores of shifted copies.</summary>
    const string PackedU32 = """
        lddw %r4, 0x1122334455667788
        mov %r5, %r4
        rsh %r5, 24
        stxb [%r10-2], %r5
        mov %r5, %r4
        rsh %r5, 16
        stxb [%r10-3], %r5
        stxb [%r10-5], %r4
        rsh %r4, 8
        stxb [%r10-4], %r4
        """;

    [Test]
    public void ByteStoresOfOneValueBecomeOneStore()
    {
        var program = Assembler.Assemble(PackedU32 + "\n" + """
            lddw %r1, 0x0102030405060708
            stxb [%r10-24], %r1
            mov %r2, %r1
            rsh %r2, 8
            stxb [%r10-23], %r2
            """ + "\n" + ReadBack);
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        string il = compiled.GetIlListing();
        Assert.That(il, Does.Contain("; byte stores at slots 4, 7, 8, 10 write the low 4 bytes of r4: merged into *(u32 *)(r10 - 5) = r4"));
        Assert.That(il, Does.Contain("merged into *(u16 *)(r10 - 24) = r1"));
        Assert.That(il, Does.Contain("; byte store merged into the store at slot 4: not emitted"));
        Assert.That(il, Does.Contain("; r5 is never read afterwards: not emitted"), "the shifts that fed the merged stores are dead");
        Assert.That(il.Split("stind.i1").Length - 1, Is.Zero);
        Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)));
        Assert.That(compiled.Run(), Is.EqualTo(0x0055667788000000UL ^ 0x0708UL));
    }

    /// <summary>What may happen between the stores of a group keeps it apart: a read of the stack, an overlapping store, a jump target, a changed value.</summary>
    [TestCase("ldxb %r7, [%r10-3]\nxor %r9, %r7", TestName = "A load between the stores")]
    [TestCase("stb [%r10-4], 0x5a", TestName = "An overlapping store before the group writes that byte")]
    [TestCase("ja next\nnext:", TestName = "A jump target between the stores")]
    [TestCase("add %r4, 1", TestName = "The value changes between the stores")]
    [TestCase("call 2", TestName = "A helper call between the stores")]
    public void ByteStoresStaySeparateWhenSomethingComesBetween(string between)
    {
        // The group's last store (byte 1 at r10-4) comes after the inserted code.
        string source = "mov %r9, 0\n" + PackedU32.Replace("rsh %r4, 8\n", between + "\nrsh %r4, 8\n")
            + "\n" + ReadBack.Replace("exit", "xor %r0, %r9\nexit");
        var program = Assembler.Assemble(source);
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        string il = compiled.GetIlListing();
        Assert.That(il, Does.Not.Contain("merged into *(u32 *)"), il);
        Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)));
    }

    /// <summary>
    /// Random blocks of byte stores of shifted copies of a few values, with loads, other stores, ALU on the
    /// values and jumps mixed in, read back from the stack: the JIT (merging what it may) agrees with the
    /// interpreter on every one, and merges happen.
    /// </summary>
    [Test]
    public void MergedStoresAgreeWithTheInterpreterOnRandomPrograms()
    {
        var rng = new Random(20261125);
        int merged = 0;
        for (int n = 0; n < 1500; n++)
        {
            var lines = new List<string> { "mov %r9, 0" };
            for (int r = 1; r <= 3; r++) lines.Add($"lddw %r{r}, 0x{rng.NextInt64():x}");
            int label = 0;
            for (int g = 0; g < 3; g++)
            {
                int src = rng.Next(1, 4), width = new[] { 2, 4, 8 }[rng.Next(3)];
                int baseOffset = -rng.Next(width, 25);
                foreach (int k in Enumerable.Range(0, width).OrderBy(_ => rng.Next()))
                {
                    if (k == 0) lines.Add($"stxb [%r10{baseOffset}], %r{src}");
                    else lines.AddRange([$"mov %r6, %r{src}", $"rsh %r6, {8 * k}", $"stxb [%r10{baseOffset + k}], %r6"]);
                    switch (rng.Next(12))
                    {
                        case 0: lines.AddRange([$"ldxb %r7, [%r10-{rng.Next(1, 25)}]", "xor %r9, %r7"]); break;
                        case 1: lines.Add($"stb [%r10-{rng.Next(1, 25)}], {rng.Next(256)}"); break;
                        case 2: lines.Add($"sth [%r10-{rng.Next(2, 25)}], {rng.Next(65536)}"); break;
                        case 3: lines.Add($"add %r{rng.Next(1, 4)}, {rng.Next(1, 100)}"); break;
                        case 4: lines.AddRange([$"jeq %r9, {rng.Next(3)}, l{label}", $"xor %r9, 1", $"l{label}:"]); label++; break;
                        case 5: lines.Add($"mov %r{rng.Next(1, 4)}, %r{rng.Next(1, 4)}"); break;
                        case 6: lines.Add($"rsh %r{rng.Next(1, 4)}, {rng.Next(1, 64)}"); break;
                    }
                }
            }
            lines.Add(ReadBack.Replace("exit", "xor %r0, %r9\nexit"));
            var program = Assembler.Assemble(string.Join("\n", lines));
            var compiled = JitCompiler.Compile(program, HelperTable.Bench());
            if (compiled.GetIlListing().Contains("merged into", StringComparison.Ordinal)) merged++;
            Assert.That(compiled.Run(), Is.EqualTo(Interpret(program)), string.Join("\n", lines));
        }
        Assert.That(merged, Is.GreaterThan(300), "random programs with mergeable groups");
    }
}
