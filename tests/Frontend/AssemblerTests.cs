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

public class InsBuilderTests
{
    [Test]
    public void BuilderAndAssemblerProduceTheSameSlots()
    {
        var built = new List<Instruction>
        {
            Ins.Mov64(0, 1), Ins.Alu32Reg(AluOp.Add, 0, 1), Ins.SignedReg(AluOp.Div, true, 0, 2), Ins.MovSx(false, 3, 4, 8),
            Ins.Neg(true, 5), Ins.Swap("be", 0, 16), Ins.Swap("bswap", 0, 64),
        };
        built.AddRange(Ins.LdImm64(1, 0x1122334455667788));
        built.AddRange([
            Ins.Load(MemSize.H, 3, 1, 12), Ins.LoadSx(MemSize.B, 3, 1, -1), Ins.Store(MemSize.DW, 10, -8, 0), Ins.StoreImm(MemSize.W, 10, -4, 7),
            Ins.Atomic(AtomicOp.FetchAdd, true, 10, -8, 1), Ins.JumpIf(JmpOp.Jne, 1, 0, 1), Ins.JumpIfReg(JmpOp.Jsle, 1, 2, 0, is32: true),
            Ins.Ja(0), Ins.Ja32(0), Ins.Call(5), Ins.CallLocal(1), Ins.CallX(2), Ins.Exit(), Ins.Exit(),
        ]);
        var assembled = Assembler.Assemble("""
            mov %r0, 1
            add32 %r0, %r1
            sdiv %r0, %r2
            movsx832 %r3, %r4
            neg %r5
            be16 %r0
            bswap64 %r0
            lddw %r1, 0x1122334455667788
            ldxh %r3, [%r1+12]
            ldxsb %r3, [%r1-1]
            stxdw [%r10-8], %r0
            stw [%r10-4], 7
            lock fetch add [%r10-8], %r1
            jne %r1, 0, +1
            jsle32 %r1, %r2, +0
            ja +0
            ja32 +0
            call 5
            call local +1
            call %r2
            exit
            exit
            """);
        Assert.That(built, Is.EqualTo(assembled));
    }
}
