using BpfJit.Frontend;

namespace BpfJit.Tests.Frontend;

public class DecoderTests
{
    static byte[] Words(params ulong[] words) => Encoder.Encode(words.Select(Instruction.FromWord).ToArray());

    [Test]
    public void FieldsDecodeFromTheirBitPositions()
    {
        // 0x61 ldxw, dst r2, src r1, off 0x1234, imm 0 -> "r2 = *(u32 *)(r1 + 4660)"
        var ins = Instruction.FromWord(0x0000_0000_1234_1261UL);
        Assert.That(ins, Is.EqualTo(new Instruction(0x61, 2, 1, 0x1234, 0)));
        Assert.That(ins.Class, Is.EqualTo(InstructionClass.Ldx));
        Assert.That(ins.MemSize, Is.EqualTo(MemSize.W));
        Assert.That(ins.ToWord(), Is.EqualTo(0x0000_0000_1234_1261UL));
    }

    [Test]
    public void NegativeOffsetAndImmediateRoundTrip()
    {
        var ins = new Instruction(0x7b, 10, 1, -8, -1);
        Assert.That(Instruction.FromWord(ins.ToWord()), Is.EqualTo(ins));
    }

    static IEnumerable<TestCaseData> BadEncodings()
    {
        yield return new TestCaseData(Words(0x95, 0xff), 1, "unknown opcode 0xff").SetName("unknown opcode");
        yield return new TestCaseData(Words(0x0000_0000_0000_0b07), 0, "invalid dst register r11").SetName("register above r10");
        yield return new TestCaseData(Words(0x18), 0, "truncated ld_imm64").SetName("truncated lddw");
        yield return new TestCaseData(Words(0x18, 0x95), 1, "second slot").SetName("lddw second slot not zero");
        yield return new TestCaseData(Words(0x0000_0001_0000_000f, 0x95), 0, "reserved").SetName("register add with imm set");
        yield return new TestCaseData(Words(0x0000_0000_0000_1007, 0x95), 0, "reserved").SetName("immediate add with src set");
        yield return new TestCaseData(Words(0x0000_0000_0001_0007, 0x95), 0, "offset").SetName("add with offset set");
        yield return new TestCaseData(Words(0x0000_0000_0002_0037, 0x95), 0, "invalid offset 2 for div").SetName("div offset 2");
        yield return new TestCaseData(Words(0x0000_0018_0000_00d4, 0x95), 0, "invalid byte swap width 24").SetName("le24");
        yield return new TestCaseData(Words(0x0000_0010_0000_00df, 0x95), 0, "unknown opcode 0xdf").SetName("bswap with register source");
        yield return new TestCaseData(Words(0x0000_0000_0018_01bf, 0x95), 0, "invalid sign-extension width 24").SetName("movsx24");
        yield return new TestCaseData(Words(0x0000_0000_0020_01bc, 0x95), 0, "invalid sign-extension width 32").SetName("movsx32 in alu32");
        yield return new TestCaseData(Words(0x0000_0002_0000_00c3, 0x95), 0, "invalid atomic operation 0x2").SetName("atomic op 2");
        yield return new TestCaseData(Words(0x0000_0000_0000_00d3, 0x95), 0, "atomic operations are 32 or 64 bits wide").SetName("atomic byte");
        yield return new TestCaseData(Words(0x0000_0000_0000_0199), 0, "unknown opcode 0x99").SetName("ldx dw memsx");
        yield return new TestCaseData(Words(0x0000_0001_0000_0095), 0, "reserved fields of exit").SetName("exit with imm");
        yield return new TestCaseData(Words(0x0000_0000_0000_0096), 0, "unknown opcode 0x96").SetName("jmp32 exit");
        yield return new TestCaseData(Words(0x0000_0000_0000_3085, 0x95), 0, "invalid call kind").SetName("call src 3");
        yield return new TestCaseData(Words(0x0000_0001_0000_008d, 0x95), 0, "reserved fields of callx").SetName("callx with imm");
        yield return new TestCaseData(Words(0x0000_0000_0000_7018, 0, 0x95), 0, "invalid ld_imm64 source 7").SetName("lddw pseudo 7");
        yield return new TestCaseData(new byte[12], 1, "truncated program").SetName("length not a multiple of 8");
    }

    [TestCaseSource(nameof(BadEncodings))]
    public void BadEncodingIsRejectedWithIndexAndReason(byte[] code, int index, string reason)
    {
        var e = Assert.Throws<BpfDecodeException>(() => Decoder.Decode(code))!;
        Assert.That(e.Index, Is.EqualTo(index));
        Assert.That(e.Message, Does.Contain(reason));
        Assert.That(e.Message, Does.StartWith($"instruction {index}: "));
    }

    [Test]
    public void EveryValidOpcodeFormDecodes()
    {
        // One representative of every instruction form the engines run.
        ulong[] words =
        [
            0x0000_0005_0000_0107, 0x0000_0000_0000_210f, 0x0000_0005_0000_0104, 0x0000_0000_0000_210c, // add
            0x0000_0003_0001_0137, 0x0000_0000_0001_213f, 0x0000_0003_0001_0197, // sdiv, smod
            0x0000_0000_0000_0187, 0x0000_0000_0000_0184, // neg
            0x0000_0000_0008_21bf, 0x0000_0000_0010_21bf, 0x0000_0000_0020_21bf, 0x0000_0000_0008_21bc, // movsx
            0x0000_0010_0000_01d4, 0x0000_0040_0000_01dc, 0x0000_0020_0000_01d7, // le, be, bswap
            0x0000_0000_0004_1261, 0x0000_0000_0004_1289, 0x0000_0000_fff8_a17b, 0x0000_0007_fff8_0a62, // loads/stores
            0x0000_0001_fff8_a1db, 0x0000_00f1_fff8_a1c3, 0x0000_00e1_fff8_a1db, // atomics
            0x0000_0000_0001_0005, 0x0000_0001_0000_0006, 0x0000_0005_0001_0115, 0x0000_0000_0001_211e, // jumps
            0x0000_007c_0000_0085, 0x0000_0001_0000_1085, 0x0000_0000_0000_028d, // call, local call, callx
            0x0000_0003_0000_1118, 0x0000_0010_0000_0000, // ld_imm64 map fd
            0x0000_0000_0000_0095,
        ];
        var slots = Decoder.Decode(words);
        Assert.That(slots, Has.Length.EqualTo(words.Length));
        Assert.That(slots.Select(s => s.ToWord()), Is.EqualTo(words));
    }

    [Test]
    public void EncodeIsTheInverseOfDecodeForEveryConformanceProgram()
    {
        string dir = Support.Paths.RequireShared("conformance");
        int checkedPrograms = 0;
        foreach (var file in Directory.GetFiles(dir, "*.data"))
        {
            var test = BpfJit.Frontend.Conformance.ConformanceFile.Load(file);
            var bytes = Encoder.Encode(test.Program!);
            Assert.That(Decoder.Decode(bytes), Is.EqualTo(test.Program), file);
            checkedPrograms++;
        }
        Assert.That(checkedPrograms, Is.EqualTo(313));
    }
}
