using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Conformance;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>Every instruction family, from one table of cases (<see cref="FamilyTable"/>), on every engine.</summary>
[TestFixture]
public class InstructionFamilyTests
{
    static IEnumerable<TestCaseData> Cases() =>
        from engine in Engines.Names
        from c in FamilyTable.All()
        select new TestCaseData(engine, c).SetName($"{c.Family}[{engine}] {c.Name}");

    [TestCaseSource(nameof(Cases))]
    public void Runs(string engine, FamilyCase c)
    {
        var program = Assembler.Assemble(c.Asm);
        if (c.Error != null)
        {
            var e = Assert.Throws<BpfRuntimeException>(() =>
                ConformanceRunner.RunWithMemory(Engines.Get(engine).Prepare(program, HelperTable.Bench()), c.Memory ?? []));
            Assert.That(e!.Message, Does.Contain(c.Error));
            return;
        }
        ulong r0 = ConformanceRunner.RunWithMemory(Engines.Get(engine).Prepare(program, HelperTable.Bench()), c.Memory ?? []);
        Assert.That(r0, Is.EqualTo(c.Expected), $"0x{r0:x} != 0x{c.Expected:x}\n{Disassembler.Disassemble(program)}");
    }

    [Test]
    public void TableCoversEveryFamily()
    {
        var families = FamilyTable.All().Select(c => c.Family).ToHashSet();
        Assert.That(families, Is.SupersetOf(new[] { "alu64", "alu32", "byteswap", "memory", "atomic", "jmp", "jmp32", "call" }));
        Assert.That(Engines.Names, Does.Contain("jit").And.Contain("interpreter"));
    }
}
