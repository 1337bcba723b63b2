using BpfJit.Frontend;

namespace BpfJit.Tests.Frontend;

public class AssemblerTests
{
    [Test]
    public void LabelsResolveToRelativeSlotOffsetsCountingLddwAsTwo()
    {
        var slots = Assembler.Assemble("""
            ja skip          # 0
            lddw %r0, 1      # 1-2
            skip:
            jne %r0, 0, skip # 3 -> -1
            exit             # 4
            """);
        Assert.That(slots[0].Offset, Is.EqualTo(2));
        Assert.That(slots[3].Offset, Is.EqualTo(-1));
        Assert.That(slots, Has.Length.EqualTo(5));
    }

    [Test]
    public void JumpToExitWithoutLabelMeansTheLastInstruction()
    {
        var slots = Assembler.Assemble("mov %r0, 1\njeq %r0, 1, exit\nmov %r0, 2\nexit");
        Assert.That(slots[1].Offset, Is.EqualTo(1));
    }

    [Test]
    public void WideHexImmediatesWrapTo32Bits()
    {
        var slots = Assembler.Assemble("jne32 %r2, 0xffffff80, +0\nexit");
        Assert.That(slots[0].Imm, Is.EqualTo(unchecked((int)0xffffff80)));
    }

    [TestCase("frob %r0", 1, "unknown mnemonic 'frob'")]
    [TestCase("mov %r11, 1", 1, "invalid register '%r11'")]
    [TestCase("exit\nja nowhere", 2, "unknown label 'nowhere'")]
    [TestCase("mov %r0", 1, "'mov' takes 2 operand(s)")]
    [TestCase("ldxw %r0, %r1", 1, "invalid memory operand")]
    [TestCase("mov %r0, 0x1ffffffff", 1, "immediate out of 32-bit range")]
    [TestCase("l:\nl:\nexit", 2, "duplicate label 'l'")]
    [TestCase("lock fetch xchg [%r10-8], %r1", 1, "'fetch' does not apply")]
    public void ErrorsNameTheLine(string source, int line, string reason)
    {
        var e = Assert.Throws<BpfAssemblerException>(() => Assembler.Assemble(source))!;
        Assert.That(e.Line, Is.EqualTo(line));
        Assert.That(e.Message, Does.Contain(reason));
    }

    [TestCase("mov %r0, 1\nexit", 1)]
    [TestCase("jlt %r0, 1, +0\nexit", 2)]
    [TestCase("jlt32 %r0, 1, +0\nexit", 3)]
    [TestCase("lock add [%r10-8], %r0\nexit", 3)]
    [TestCase("call local +0\nexit", 3)]
    [TestCase("sdiv %r0, 1\nexit", 4)]
    [TestCase("ldxsb %r0, [%r1+0]\nexit", 4)]
    [TestCase("ja32 +0\nexit", 4)]
    public void CpuVersionIsTheNewestInstructionsGroup(string source, int version)
    {
        Assert.That(CpuVersion.Required(Assembler.Assemble(source)), Is.EqualTo(version));
    }
}
