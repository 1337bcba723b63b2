namespace BpfJit.Frontend;

/// <summary>The eight instruction classes (the low three bits of the opcode), RFC 9669 section 3.</summary>
public enum InstructionClass : byte
{
    /// <summary>Non-standard load operations (ld_imm64 and the legacy packet loads).</summary>
    Ld = 0x00,
    /// <summary>Load into register.</summary>
    Ldx = 0x01,
    /// <summary>Store from immediate.</summary>
    St = 0x02,
    /// <summary>Store from register (and atomics).</summary>
    Stx = 0x03,
    /// <summary>32-bit arithmetic.</summary>
    Alu = 0x04,
    /// <summary>64-bit jumps, calls and exit.</summary>
    Jmp = 0x05,
    /// <summary>32-bit jumps.</summary>
    Jmp32 = 0x06,
    /// <summary>64-bit arithmetic.</summary>
    Alu64 = 0x07,
}

/// <summary>Arithmetic operation codes (the high four bits of an ALU/ALU64 opcode).</summary>
public enum AluOp : byte
{
    /// <summary>dst += src</summary>
    Add = 0x00,
    /// <summary>dst -= src</summary>
    Sub = 0x10,
    /// <summary>dst *= src</summary>
    Mul = 0x20,
    /// <summary>dst /= src (signed when offset is 1)</summary>
    Div = 0x30,
    /// <summary>dst |= src</summary>
    Or = 0x40,
    /// <summary>dst &amp;= src</summary>
    And = 0x50,
    /// <summary>dst &lt;&lt;= src</summary>
    Lsh = 0x60,
    /// <summary>dst &gt;&gt;= src (logical)</summary>
    Rsh = 0x70,
    /// <summary>dst = -dst</summary>
    Neg = 0x80,
    /// <summary>dst %= src (signed when offset is 1)</summary>
    Mod = 0x90,
    /// <summary>dst ^= src</summary>
    Xor = 0xa0,
    /// <summary>dst = src (sign-extending when offset is 8, 16 or 32)</summary>
    Mov = 0xb0,
    /// <summary>dst &gt;&gt;= src (arithmetic)</summary>
    Arsh = 0xc0,
    /// <summary>Byte-order conversion (le/be in ALU, bswap in ALU64).</summary>
    End = 0xd0,
}

/// <summary>Jump operation codes (the high four bits of a JMP/JMP32 opcode).</summary>
public enum JmpOp : byte
{
    /// <summary>Unconditional jump.</summary>
    Ja = 0x00,
    /// <summary>Jump if equal.</summary>
    Jeq = 0x10,
    /// <summary>Jump if unsigned greater.</summary>
    Jgt = 0x20,
    /// <summary>Jump if unsigned greater or equal.</summary>
    Jge = 0x30,
    /// <summary>Jump if dst &amp; src is not zero.</summary>
    Jset = 0x40,
    /// <summary>Jump if not equal.</summary>
    Jne = 0x50,
    /// <summary>Jump if signed greater.</summary>
    Jsgt = 0x60,
    /// <summary>Jump if signed greater or equal.</summary>
    Jsge = 0x70,
    /// <summary>Function call (helper, local, kfunc or callx).</summary>
    Call = 0x80,
    /// <summary>Return.</summary>
    Exit = 0x90,
    /// <summary>Jump if unsigned less.</summary>
    Jlt = 0xa0,
    /// <summary>Jump if unsigned less or equal.</summary>
    Jle = 0xb0,
    /// <summary>Jump if signed less.</summary>
    Jslt = 0xc0,
    /// <summary>Jump if signed less or equal.</summary>
    Jsle = 0xd0,
    /// <summary>BPF_JCOND: a condition the kernel decides at run time; src 0 is <c>may_goto</c>.</summary>
    Jcond = 0xe0,
}

/// <summary>Memory access size (bits 3-4 of a load/store opcode).</summary>
public enum MemSize : byte
{
    /// <summary>4 bytes.</summary>
    W = 0x00,
    /// <summary>2 bytes.</summary>
    H = 0x08,
    /// <summary>1 byte.</summary>
    B = 0x10,
    /// <summary>8 bytes.</summary>
    DW = 0x18,
}

/// <summary>Memory access mode (bits 5-7 of a load/store opcode).</summary>
public enum MemMode : byte
{
    /// <summary>64-bit immediate (ld_imm64).</summary>
    Imm = 0x00,
    /// <summary>Legacy packet access, absolute.</summary>
    Abs = 0x20,
    /// <summary>Legacy packet access, indirect.</summary>
    Ind = 0x40,
    /// <summary>Regular memory access.</summary>
    Mem = 0x60,
    /// <summary>Sign-extending load.</summary>
    MemSx = 0x80,
    /// <summary>Atomic read-modify-write.</summary>
    Atomic = 0xc0,
}

/// <summary>Atomic operations, kept in the immediate of an STX|ATOMIC instruction.</summary>
public enum AtomicOp
{
    /// <summary>*ptr += src</summary>
    Add = 0x00,
    /// <summary>*ptr |= src</summary>
    Or = 0x40,
    /// <summary>*ptr &amp;= src</summary>
    And = 0x50,
    /// <summary>*ptr ^= src</summary>
    Xor = 0xa0,
    /// <summary>src = fetch_add(ptr, src)</summary>
    FetchAdd = 0x01,
    /// <summary>src = fetch_or(ptr, src)</summary>
    FetchOr = 0x41,
    /// <summary>src = fetch_and(ptr, src)</summary>
    FetchAnd = 0x51,
    /// <summary>src = fetch_xor(ptr, src)</summary>
    FetchXor = 0xa1,
    /// <summary>src = xchg(ptr, src)</summary>
    Xchg = 0xe1,
    /// <summary>r0 = cmpxchg(ptr, r0, src)</summary>
    CmpXchg = 0xf1,
}

/// <summary>The source field values of ld_imm64 that the kernel defines (BPF_PSEUDO_*).</summary>
public enum Ld64Source : byte
{
    /// <summary>A plain 64-bit constant.</summary>
    Imm = 0,
    /// <summary>BPF_PSEUDO_MAP_FD: imm is a map file descriptor.</summary>
    MapFd = 1,
    /// <summary>BPF_PSEUDO_MAP_VALUE: imm is a map fd, the second imm an offset into its value.</summary>
    MapValue = 2,
    /// <summary>BPF_PSEUDO_BTF_ID: imm is a kernel BTF type id.</summary>
    BtfId = 3,
    /// <summary>BPF_PSEUDO_FUNC: imm is a relative instruction offset of a subprogram.</summary>
    Func = 4,
    /// <summary>BPF_PSEUDO_MAP_IDX: imm is an index into the program's map table.</summary>
    MapIdx = 5,
    /// <summary>BPF_PSEUDO_MAP_IDX_VALUE: map index plus value offset.</summary>
    MapIdxValue = 6,
}

/// <summary>Source field values of a call instruction.</summary>
public enum CallKind : byte
{
    /// <summary>A helper function by id.</summary>
    Helper = 0,
    /// <summary>BPF_PSEUDO_CALL: a bpf-to-bpf call, imm is the relative target.</summary>
    Local = 1,
    /// <summary>BPF_PSEUDO_KFUNC_CALL: a kernel function by BTF id.</summary>
    Kfunc = 2,
}

/// <summary>Field masks and sizes; the opcodes themselves are the table in OpcodeTable.cs.</summary>
public static partial class Op
{
    /// <summary>Mask of the class bits.</summary>
    public const byte ClassMask = 0x07;
    /// <summary>Bit selecting a register source (BPF_X) for ALU and JMP classes.</summary>
    public const byte SourceX = 0x08;
    /// <summary>Mask of the operation bits for ALU and JMP classes.</summary>
    public const byte OpMask = 0xf0;
    /// <summary>Mask of the size bits for load/store classes.</summary>
    public const byte SizeMask = 0x18;
    /// <summary>Mask of the mode bits for load/store classes.</summary>
    public const byte ModeMask = 0xe0;

    /// <summary>The kernel's BPF_MAX_LOOPS: how many times a may_goto of one frame falls through before it jumps.</summary>
    public const int MayGotoBudget = 8 * 1024 * 1024;

    /// <summary>Number of bytes of a memory size.</summary>
    public static int Bytes(MemSize size) => size switch
    {
        MemSize.B => 1,
        MemSize.H => 2,
        MemSize.W => 4,
        _ => 8,
    };

    /// <summary>The memory size for a number of bytes (1, 2, 4 or 8).</summary>
    public static MemSize SizeOf(int bytes) => bytes switch
    {
        1 => MemSize.B,
        2 => MemSize.H,
        4 => MemSize.W,
        8 => MemSize.DW,
        _ => throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "size must be 1, 2, 4 or 8"),
    };
}
