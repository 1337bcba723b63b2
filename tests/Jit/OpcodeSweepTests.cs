using System.Runtime.InteropServices;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Every opcode byte with a spread of register, offset and immediate fields: whatever the decoder
/// and <see cref="ProgramChecks"/> accept, the JIT compiles (no compile error, no InvalidProgramException)
/// and runs to the interpreter's result; whatever they reject, both engines reject with the same error.
/// </summary>
[TestFixture]
public class OpcodeSweepTests
{
    static readonly short[] s_offsets = [0, 1, 8, 16, 32, -8];
    static readonly int[] s_imms = [0, 1, 2, 5, 16, 32, 64, -1, 0x41, 0xa1, 0xe1, 0xf1];

    [Test]
    public unsafe void EveryValidEncodingCompilesAndAgrees()
    {
        int valid = 0, rejected = 0;
        var opcodesSeen = new HashSet<byte>();
        var helpers = HelperTable.Bench();
        byte* memory = (byte*)NativeMemory.AlignedAlloc(256, 64);
        // The interpreter touches only registered memory: the buffer r1 and r2 point into.
        BpfJit.Runtime.Checked.MemoryRegions.Register((ulong)memory, 256, BpfJit.Runtime.Checked.MemoryRegionKind.Context);
        try
        {
            for (int opcode = 0; opcode < 256; opcode++)
            {
                var encodings = (
                    from dst in (byte[])[0, 1, 2, 10]
                    from src in (byte[])[0, 1, 2, 10]
                    from off in s_offsets
                    from imm in s_imms
                    let ins = new Instruction((byte)opcode, dst, src, off, imm)
                    where Decoder.Check(ins) == null && Safe(ins)
                    select ins).ToList();
                // At most 24 per opcode, spread over the field combinations (the sweep stays a few seconds).
                int step = Math.Max(1, encodings.Count / 24);
                for (int k = 0; k < encodings.Count; k += step)
                {
                    var ins = encodings[k];
                    // ins; r0 = r0 (a landing slot for offset-1 jumps); exit; then the ld_imm64 tail / call target
                    Instruction[] program = ins.IsLdImm64
                        ? [ins, new Instruction(0, 0, 0, 0, 7), new Instruction(0xbf, 0, 0, 0, 0), new Instruction(0x95, 0, 0, 0, 0)]
                        : [ins, new Instruction(0xbf, 0, 0, 0, 0), new Instruction(0x95, 0, 0, 0, 0)];
                    var expected = Run(InterpreterEngine.Instance, program, helpers, memory);
                    var actual = Run(JitEngine.Instance, program, helpers, memory);
                    Assert.That(actual, Is.EqualTo(expected), $"{ins} ({Disassembler.Format(program, 0)})");
                    if (expected.Error == null || !expected.Error.Contains("instruction 0: ", StringComparison.Ordinal)) { valid++; opcodesSeen.Add(ins.Opcode); }
                    else rejected++;
                }
            }
        }
        finally
        {
            BpfJit.Runtime.Checked.MemoryRegions.Unregister((ulong)memory);
            NativeMemory.AlignedFree(memory);
        }
        TestContext.Out.WriteLine($"{valid} encodings ran, {rejected} rejected alike, {opcodesSeen.Count} distinct opcodes");
        // RFC 9669 has 119 distinct opcode bytes that can run here (ALU, JMP, loads, stores, atomics, ld_imm64).
        Assert.That(opcodesSeen, Has.Count.GreaterThanOrEqualTo(119));
    }

    /// <summary>Memory operands only through r1, r2 (pointers into the test buffer) or r10 below the frame top; no backward jumps.</summary>
    static bool Safe(Instruction ins)
    {
        if (ins.IsBranch && ins.BranchOffset < 0) return false;   // a jump back to itself loops forever
        switch (ins.Class)
        {
            case InstructionClass.Ldx:
                return ins.Src is 1 or 2 || (ins.Src == 10 && ins.Offset < 0);
            case InstructionClass.St or InstructionClass.Stx:
                return (ins.Dst is 1 or 2 || (ins.Dst == 10 && ins.Offset < 0)) && ins.Src != 10;
            default:
                // r10 is a stack address, different in each engine: keep it out of values and comparisons
                return ins.Dst != 10 && ins.Src != 10;
        }
    }

    sealed record Outcome(ulong R0, string? Error, string Memory);

    static unsafe Outcome Run(IBpfEngine engine, Instruction[] program, HelperTable helpers, byte* memory)
    {
        for (int i = 0; i < 256; i++) memory[i] = (byte)(i * 7 + 3);
        try
        {
            // r1 = memory + 64, r2 = memory + 128: both with room on either side for offsets -8..+39
            ulong r0 = engine.Prepare(program, helpers)((ulong)(memory + 64), (ulong)(memory + 128));
            return new Outcome(r0, null, Convert.ToHexString(new ReadOnlySpan<byte>(memory, 256)));
        }
        catch (BpfException e)
        {
            return new Outcome(0, e.Message, Convert.ToHexString(new ReadOnlySpan<byte>(memory, 256)));
        }
    }
}
