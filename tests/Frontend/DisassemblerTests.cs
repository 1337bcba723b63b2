using BpfJit.Frontend;

namespace BpfJit.Tests.Frontend;

public class DisassemblerTests
{
    [TestCase("ldxw %r0, [%r1+8]", "r0 = *(u32 *)(r1 + 8)")]
    [TestCase("ldxsh %r0, [%r1-2]", "r0 = *(s16 *)(r1 - 2)")]
    [TestCase("stxdw [%r10-8], %r1", "*(u64 *)(r10 - 8) = r1")]
    [TestCase("stb [%r10-1], 7", "*(u8 *)(r10 - 1) = 7")]
    [TestCase("add32 %r0, %r1", "w0 += w1")]
    [TestCase("add %r0, -3", "r0 += -3")]
    [TestCase("mov %r0, %r1", "r0 = r1")]
    [TestCase("mov32 %r0, 5", "w0 = 5")]
    [TestCase("movsx832 %r0, %r1", "w0 = (s8)w1")]
    [TestCase("movsx3264 %r0, %r1", "r0 = (s32)r1")]
    [TestCase("sdiv %r0, %r1", "r0 s/= r1")]
    [TestCase("smod32 %r0, 3", "w0 s%= 3")]
    [TestCase("arsh %r0, 3", "r0 s>>= 3")]
    [TestCase("neg32 %r3", "w3 = -w3")]
    [TestCase("be16 %r0", "r0 = be16 r0")]
    [TestCase("le32 %r0", "r0 = le32 r0")]
    [TestCase("bswap64 %r0", "r0 = bswap64 r0")]
    [TestCase("jgt %r1, 5, +3", "if r1 > 0x5 goto +3")]
    [TestCase("jsle32 %r1, -1, -2", "if w1 s<= -0x1 goto -2")]
    [TestCase("jset %r1, %r2, +0", "if r1 & r2 goto +0")]
    [TestCase("ja +4", "goto +4")]
    [TestCase("ja32 -1", "gotol -1")]
    [TestCase("call 124", "call bpf_sk_assign#124")]
    [TestCase("call 1", "call bpf_map_lookup_elem#1")]
    [TestCase("call local +2", "call pc+2")]
    [TestCase("call %r2", "callx r2")]
    [TestCase("exit", "exit")]
    [TestCase("lock add [%r10-8], %r1", "lock *(u64 *)(r10 - 8) += r1")]
    [TestCase("lock fetch xor32 [%r1+4], %r2", "w2 = atomic_fetch_xor((u32 *)(r1 + 4), w2)")]
    [TestCase("lock xchg [%r10-8], %r1", "r1 = xchg_64(r10 - 8, r1)")]
    [TestCase("lock cmpxchg32 [%r10-8], %r1", "w0 = cmpxchg32_32(r10 - 8, w0, w1)")]
    [TestCase("lddw %r0, 0x1122334455667788", "r0 = 0x1122334455667788 ll")]
    public void FormatsLikeLlvmObjdump(string asm, string expected)
    {
        var slots = Assembler.Assemble(asm + "\nexit");
        Assert.That(Disassembler.Format(slots, 0), Is.EqualTo(expected));
    }

    [Test]
    public void PseudoLdImm64FormsStaySymbolic()
    {
        var slots = new[]
        {
            new Instruction(Op.LdImm64, 1, (byte)Ld64Source.MapFd, 0, 3), new Instruction(0, 0, 0, 0, 0),
            new Instruction(Op.LdImm64, 1, (byte)Ld64Source.MapIdxValue, 0, 2), new Instruction(0, 0, 0, 0, 16),
            new Instruction(Op.Exit, 0, 0, 0, 0),
        };
        Assert.That(Disassembler.Format(slots, 0), Is.EqualTo("r1 = map[fd:3] ll"));
        Assert.That(Disassembler.Format(slots, 2), Is.EqualTo("r1 = map[idx:2][0]+16 ll"));
        Assert.That(Disassembler.Disassemble(slots), Is.EqualTo("   0: r1 = map[fd:3] ll\n   2: r1 = map[idx:2][0]+16 ll\n   4: exit\n".Replace("\n", Environment.NewLine)));
    }
}
