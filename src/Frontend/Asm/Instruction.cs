using System.Buffers.Binary;

namespace BpfJit.Frontend;

/// <summary>
/// One 8-byte eBPF instruction slot, as encoded: opcode, dst and src registers, a signed 16-bit
/// offset and a signed 32-bit immediate. An ld_imm64 occupies two consecutive slots; the second
/// holds the upper 32 bits of the constant in its immediate. Programs are arrays of slots, so
/// jump offsets and instruction indexes mean the same thing as in the kernel.
/// </summary>
public readonly record struct Instruction(byte Opcode, byte Dst, byte Src, short Offset, int Imm)
{
    /// <summary>Size of one instruction slot in bytes.</summary>
    public const int Size = 8;

    /// <summary>The instruction class.</summary>
    public InstructionClass Class => (InstructionClass)(Opcode & Op.ClassMask);

    /// <summary>True for ALU and ALU64.</summary>
    public bool IsAlu => Class is InstructionClass.Alu or InstructionClass.Alu64;

    /// <summary>True for JMP and JMP32.</summary>
    public bool IsJmp => Class is InstructionClass.Jmp or InstructionClass.Jmp32;

    /// <summary>The ALU operation (meaningful for ALU classes).</summary>
    public AluOp AluOp => (AluOp)(Opcode & Op.OpMask);

    /// <summary>The jump operation (meaningful for JMP classes).</summary>
    public JmpOp JmpOp => (JmpOp)(Opcode & Op.OpMask);

    /// <summary>True when an ALU or JMP instruction takes its operand from the src register.</summary>
    public bool SourceIsReg => (Opcode & Op.SourceX) != 0;

    /// <summary>The memory size (meaningful for load/store classes).</summary>
    public MemSize MemSize => (MemSize)(Opcode & Op.SizeMask);

    /// <summary>The memory mode (meaningful for load/store classes).</summary>
    public MemMode MemMode => (MemMode)(Opcode & Op.ModeMask);

    /// <summary>True for the first slot of an ld_imm64.</summary>
    public bool IsLdImm64 => Opcode == Op.LdImm64;

    /// <summary>True for a helper, local or kfunc call (not callx).</summary>
    public bool IsCall => Opcode == Op.Call;

    /// <summary>True for exit.</summary>
    public bool IsExit => Opcode == Op.Exit;

    /// <summary>True for any jump that carries a target (ja, ja32 and conditional jumps).</summary>
    public bool IsBranch => IsJmp && JmpOp is not (JmpOp.Call or JmpOp.Exit);

    /// <summary>True for may_goto (BPF_JMP | BPF_JCOND, src 0).</summary>
    public bool IsMayGoto => Opcode == Op.MayGoto;

    /// <summary>True for an unconditional jump (ja or ja32).</summary>
    public bool IsUnconditionalJump => Opcode is Op.Ja or Op.Ja32;

    /// <summary>The relative slot offset of a branch: imm for ja32, offset otherwise.</summary>
    public int BranchOffset => Opcode == Op.Ja32 ? Imm : Offset;

    /// <summary>The 64-bit constant of an ld_imm64 whose second slot is <paramref name="next"/>.</summary>
    public ulong Imm64(Instruction next) => (uint)Imm | ((ulong)(uint)next.Imm << 32);

    /// <summary>Reads one slot from 8 little-endian bytes.</summary>
    public static Instruction Read(ReadOnlySpan<byte> bytes)
    {
        ulong word = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return FromWord(word);
    }

    /// <summary>Decodes one slot from its 64-bit little-endian word.</summary>
    public static Instruction FromWord(ulong word) => new(
        (byte)word,
        (byte)((word >> 8) & 0x0f),
        (byte)((word >> 12) & 0x0f),
        (short)(word >> 16),
        (int)(word >> 32));

    /// <summary>The 64-bit little-endian word of this slot.</summary>
    public ulong ToWord() =>
        Opcode | ((ulong)(Dst & 0x0f) << 8) | ((ulong)(Src & 0x0f) << 12) | ((ulong)(ushort)Offset << 16) | ((ulong)(uint)Imm << 32);

    /// <summary>Writes this slot as 8 little-endian bytes.</summary>
    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64LittleEndian(destination, ToWord());

    /// <inheritdoc />
    public override string ToString() => $"{{op=0x{Opcode:x2} dst=r{Dst} src=r{Src} off={Offset} imm={Imm}}}";
}
