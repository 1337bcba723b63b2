namespace BpfJit.Frontend;

/// <summary>
/// The opcode table: every instruction the engines run, named once, composed from its class, operation and
/// source fields, in the kernel's order (ALU64 then ALU by operation code, JMP then JMP32 by operation code,
/// then LD, LDX, ST, STX and the atomics). The interpreter's dispatch, the JIT's emitters and the verifier's
/// ALU and JMP transfer functions follow this order and use these names; docs/architecture.md, "The opcode table".
/// No other file under src/ writes an opcode as a number (OpcodeTableTests checks it).
/// </summary>
public static partial class Op
{
    const byte K = 0, X = SourceX;
    const byte ClsAlu64 = (byte)InstructionClass.Alu64, ClsAlu = (byte)InstructionClass.Alu, ClsJmp = (byte)InstructionClass.Jmp, ClsJmp32 = (byte)InstructionClass.Jmp32;
    const byte ClsLd = (byte)InstructionClass.Ld, ClsLdx = (byte)InstructionClass.Ldx, ClsSt = (byte)InstructionClass.St, ClsStx = (byte)InstructionClass.Stx;
    const byte Mem = (byte)MemMode.Mem, MemSx = (byte)MemMode.MemSx, Atomic = (byte)MemMode.Atomic;
    const byte W = (byte)MemSize.W, H = (byte)MemSize.H, B = (byte)MemSize.B, DW = (byte)MemSize.DW;

    // ALU64: 64-bit arithmetic
    /// <summary>add64, imm source: dst += src.</summary>
    public const byte Add64Imm = ClsAlu64 | (byte)AluOp.Add | K;
    /// <summary>add64, a register source: dst += src.</summary>
    public const byte Add64Reg = ClsAlu64 | (byte)AluOp.Add | X;
    /// <summary>sub64, imm source: dst -= src.</summary>
    public const byte Sub64Imm = ClsAlu64 | (byte)AluOp.Sub | K;
    /// <summary>sub64, a register source: dst -= src.</summary>
    public const byte Sub64Reg = ClsAlu64 | (byte)AluOp.Sub | X;
    /// <summary>mul64, imm source: dst *= src.</summary>
    public const byte Mul64Imm = ClsAlu64 | (byte)AluOp.Mul | K;
    /// <summary>mul64, a register source: dst *= src.</summary>
    public const byte Mul64Reg = ClsAlu64 | (byte)AluOp.Mul | X;
    /// <summary>div64, imm source: dst /= src; sdiv when offset is 1.</summary>
    public const byte Div64Imm = ClsAlu64 | (byte)AluOp.Div | K;
    /// <summary>div64, a register source: dst /= src; sdiv when offset is 1.</summary>
    public const byte Div64Reg = ClsAlu64 | (byte)AluOp.Div | X;
    /// <summary>or64, imm source: dst |= src.</summary>
    public const byte Or64Imm = ClsAlu64 | (byte)AluOp.Or | K;
    /// <summary>or64, a register source: dst |= src.</summary>
    public const byte Or64Reg = ClsAlu64 | (byte)AluOp.Or | X;
    /// <summary>and64, imm source: dst &amp;= src.</summary>
    public const byte And64Imm = ClsAlu64 | (byte)AluOp.And | K;
    /// <summary>and64, a register source: dst &amp;= src.</summary>
    public const byte And64Reg = ClsAlu64 | (byte)AluOp.And | X;
    /// <summary>lsh64, imm source: dst &lt;&lt;= src.</summary>
    public const byte Lsh64Imm = ClsAlu64 | (byte)AluOp.Lsh | K;
    /// <summary>lsh64, a register source: dst &lt;&lt;= src.</summary>
    public const byte Lsh64Reg = ClsAlu64 | (byte)AluOp.Lsh | X;
    /// <summary>rsh64, imm source: dst &gt;&gt;= src, logical.</summary>
    public const byte Rsh64Imm = ClsAlu64 | (byte)AluOp.Rsh | K;
    /// <summary>rsh64, a register source: dst &gt;&gt;= src, logical.</summary>
    public const byte Rsh64Reg = ClsAlu64 | (byte)AluOp.Rsh | X;
    /// <summary>neg64: dst = -dst.</summary>
    public const byte Neg64 = ClsAlu64 | (byte)AluOp.Neg | K;
    /// <summary>mod64, imm source: dst %= src; smod when offset is 1.</summary>
    public const byte Mod64Imm = ClsAlu64 | (byte)AluOp.Mod | K;
    /// <summary>mod64, a register source: dst %= src; smod when offset is 1.</summary>
    public const byte Mod64Reg = ClsAlu64 | (byte)AluOp.Mod | X;
    /// <summary>xor64, imm source: dst ^= src.</summary>
    public const byte Xor64Imm = ClsAlu64 | (byte)AluOp.Xor | K;
    /// <summary>xor64, a register source: dst ^= src.</summary>
    public const byte Xor64Reg = ClsAlu64 | (byte)AluOp.Xor | X;
    /// <summary>mov64, imm source: dst = src; movsx when offset is 8, 16 or 32.</summary>
    public const byte Mov64Imm = ClsAlu64 | (byte)AluOp.Mov | K;
    /// <summary>mov64, a register source: dst = src; movsx when offset is 8, 16 or 32.</summary>
    public const byte Mov64Reg = ClsAlu64 | (byte)AluOp.Mov | X;
    /// <summary>arsh64, imm source: dst &gt;&gt;= src, arithmetic.</summary>
    public const byte Arsh64Imm = ClsAlu64 | (byte)AluOp.Arsh | K;
    /// <summary>arsh64, a register source: dst &gt;&gt;= src, arithmetic.</summary>
    public const byte Arsh64Reg = ClsAlu64 | (byte)AluOp.Arsh | X;
    /// <summary>bswap16/32/64: BPF_ALU64 | BPF_END | BPF_TO_LE, an unconditional byte swap of imm bits.</summary>
    public const byte Bswap = ClsAlu64 | (byte)AluOp.End | K;

    // ALU: 32-bit arithmetic, results zero-extended
    /// <summary>add32, imm source: dst += src.</summary>
    public const byte Add32Imm = ClsAlu | (byte)AluOp.Add | K;
    /// <summary>add32, a register source: dst += src.</summary>
    public const byte Add32Reg = ClsAlu | (byte)AluOp.Add | X;
    /// <summary>sub32, imm source: dst -= src.</summary>
    public const byte Sub32Imm = ClsAlu | (byte)AluOp.Sub | K;
    /// <summary>sub32, a register source: dst -= src.</summary>
    public const byte Sub32Reg = ClsAlu | (byte)AluOp.Sub | X;
    /// <summary>mul32, imm source: dst *= src.</summary>
    public const byte Mul32Imm = ClsAlu | (byte)AluOp.Mul | K;
    /// <summary>mul32, a register source: dst *= src.</summary>
    public const byte Mul32Reg = ClsAlu | (byte)AluOp.Mul | X;
    /// <summary>div32, imm source: dst /= src; sdiv when offset is 1.</summary>
    public const byte Div32Imm = ClsAlu | (byte)AluOp.Div | K;
    /// <summary>div32, a register source: dst /= src; sdiv when offset is 1.</summary>
    public const byte Div32Reg = ClsAlu | (byte)AluOp.Div | X;
    /// <summary>or32, imm source: dst |= src.</summary>
    public const byte Or32Imm = ClsAlu | (byte)AluOp.Or | K;
    /// <summary>or32, a register source: dst |= src.</summary>
    public const byte Or32Reg = ClsAlu | (byte)AluOp.Or | X;
    /// <summary>and32, imm source: dst &amp;= src.</summary>
    public const byte And32Imm = ClsAlu | (byte)AluOp.And | K;
    /// <summary>and32, a register source: dst &amp;= src.</summary>
    public const byte And32Reg = ClsAlu | (byte)AluOp.And | X;
    /// <summary>lsh32, imm source: dst &lt;&lt;= src.</summary>
    public const byte Lsh32Imm = ClsAlu | (byte)AluOp.Lsh | K;
    /// <summary>lsh32, a register source: dst &lt;&lt;= src.</summary>
    public const byte Lsh32Reg = ClsAlu | (byte)AluOp.Lsh | X;
    /// <summary>rsh32, imm source: dst &gt;&gt;= src, logical.</summary>
    public const byte Rsh32Imm = ClsAlu | (byte)AluOp.Rsh | K;
    /// <summary>rsh32, a register source: dst &gt;&gt;= src, logical.</summary>
    public const byte Rsh32Reg = ClsAlu | (byte)AluOp.Rsh | X;
    /// <summary>neg32: dst = -dst.</summary>
    public const byte Neg32 = ClsAlu | (byte)AluOp.Neg | K;
    /// <summary>mod32, imm source: dst %= src; smod when offset is 1.</summary>
    public const byte Mod32Imm = ClsAlu | (byte)AluOp.Mod | K;
    /// <summary>mod32, a register source: dst %= src; smod when offset is 1.</summary>
    public const byte Mod32Reg = ClsAlu | (byte)AluOp.Mod | X;
    /// <summary>xor32, imm source: dst ^= src.</summary>
    public const byte Xor32Imm = ClsAlu | (byte)AluOp.Xor | K;
    /// <summary>xor32, a register source: dst ^= src.</summary>
    public const byte Xor32Reg = ClsAlu | (byte)AluOp.Xor | X;
    /// <summary>mov32, imm source: dst = src; movsx when offset is 8, 16 or 32.</summary>
    public const byte Mov32Imm = ClsAlu | (byte)AluOp.Mov | K;
    /// <summary>mov32, a register source: dst = src; movsx when offset is 8, 16 or 32.</summary>
    public const byte Mov32Reg = ClsAlu | (byte)AluOp.Mov | X;
    /// <summary>arsh32, imm source: dst &gt;&gt;= src, arithmetic.</summary>
    public const byte Arsh32Imm = ClsAlu | (byte)AluOp.Arsh | K;
    /// <summary>arsh32, a register source: dst &gt;&gt;= src, arithmetic.</summary>
    public const byte Arsh32Reg = ClsAlu | (byte)AluOp.Arsh | X;
    /// <summary>le16/32/64: BPF_ALU | BPF_END | BPF_TO_LE, to little-endian (a truncation to imm bits on this host).</summary>
    public const byte Le = ClsAlu | (byte)AluOp.End | K;
    /// <summary>be16/32/64: BPF_ALU | BPF_END | BPF_TO_BE, to big-endian (a byte swap of imm bits on this host).</summary>
    public const byte Be = ClsAlu | (byte)AluOp.End | X;

    // JMP: 64-bit comparisons, calls and exit
    /// <summary>ja: BPF_JMP | BPF_JA, goto +offset.</summary>
    public const byte Ja = ClsJmp | (byte)JmpOp.Ja | K;
    /// <summary>jeq, imm source: jump if dst == src.</summary>
    public const byte JeqImm = ClsJmp | (byte)JmpOp.Jeq | K;
    /// <summary>jeq, a register source: jump if dst == src.</summary>
    public const byte JeqReg = ClsJmp | (byte)JmpOp.Jeq | X;
    /// <summary>jgt, imm source: jump if dst &gt; (unsigned) src.</summary>
    public const byte JgtImm = ClsJmp | (byte)JmpOp.Jgt | K;
    /// <summary>jgt, a register source: jump if dst &gt; (unsigned) src.</summary>
    public const byte JgtReg = ClsJmp | (byte)JmpOp.Jgt | X;
    /// <summary>jge, imm source: jump if dst &gt;= (unsigned) src.</summary>
    public const byte JgeImm = ClsJmp | (byte)JmpOp.Jge | K;
    /// <summary>jge, a register source: jump if dst &gt;= (unsigned) src.</summary>
    public const byte JgeReg = ClsJmp | (byte)JmpOp.Jge | X;
    /// <summary>jset, imm source: jump if dst &amp; (non-zero) src.</summary>
    public const byte JsetImm = ClsJmp | (byte)JmpOp.Jset | K;
    /// <summary>jset, a register source: jump if dst &amp; (non-zero) src.</summary>
    public const byte JsetReg = ClsJmp | (byte)JmpOp.Jset | X;
    /// <summary>jne, imm source: jump if dst != src.</summary>
    public const byte JneImm = ClsJmp | (byte)JmpOp.Jne | K;
    /// <summary>jne, a register source: jump if dst != src.</summary>
    public const byte JneReg = ClsJmp | (byte)JmpOp.Jne | X;
    /// <summary>jsgt, imm source: jump if dst &gt; (signed) src.</summary>
    public const byte JsgtImm = ClsJmp | (byte)JmpOp.Jsgt | K;
    /// <summary>jsgt, a register source: jump if dst &gt; (signed) src.</summary>
    public const byte JsgtReg = ClsJmp | (byte)JmpOp.Jsgt | X;
    /// <summary>jsge, imm source: jump if dst &gt;= (signed) src.</summary>
    public const byte JsgeImm = ClsJmp | (byte)JmpOp.Jsge | K;
    /// <summary>jsge, a register source: jump if dst &gt;= (signed) src.</summary>
    public const byte JsgeReg = ClsJmp | (byte)JmpOp.Jsge | X;
    /// <summary>call: BPF_JMP | BPF_CALL; src says what is called (<see cref="CallKind"/>).</summary>
    public const byte Call = ClsJmp | (byte)JmpOp.Call | K;
    /// <summary>callx: BPF_JMP | BPF_CALL | BPF_X, the helper whose id is in dst.</summary>
    public const byte CallX = ClsJmp | (byte)JmpOp.Call | X;
    /// <summary>exit: BPF_JMP | BPF_EXIT.</summary>
    public const byte Exit = ClsJmp | (byte)JmpOp.Exit | K;
    /// <summary>jlt, imm source: jump if dst &lt; (unsigned) src.</summary>
    public const byte JltImm = ClsJmp | (byte)JmpOp.Jlt | K;
    /// <summary>jlt, a register source: jump if dst &lt; (unsigned) src.</summary>
    public const byte JltReg = ClsJmp | (byte)JmpOp.Jlt | X;
    /// <summary>jle, imm source: jump if dst &lt;= (unsigned) src.</summary>
    public const byte JleImm = ClsJmp | (byte)JmpOp.Jle | K;
    /// <summary>jle, a register source: jump if dst &lt;= (unsigned) src.</summary>
    public const byte JleReg = ClsJmp | (byte)JmpOp.Jle | X;
    /// <summary>jslt, imm source: jump if dst &lt; (signed) src.</summary>
    public const byte JsltImm = ClsJmp | (byte)JmpOp.Jslt | K;
    /// <summary>jslt, a register source: jump if dst &lt; (signed) src.</summary>
    public const byte JsltReg = ClsJmp | (byte)JmpOp.Jslt | X;
    /// <summary>jsle, imm source: jump if dst &lt;= (signed) src.</summary>
    public const byte JsleImm = ClsJmp | (byte)JmpOp.Jsle | K;
    /// <summary>jsle, a register source: jump if dst &lt;= (signed) src.</summary>
    public const byte JsleReg = ClsJmp | (byte)JmpOp.Jsle | X;
    /// <summary>
    /// may_goto: BPF_JMP | BPF_JCOND with src 0 (BPF_MAY_GOTO). Falls through while the frame's loop
    /// budget lasts (<see cref="MayGotoBudget"/> times), then jumps: clang's <c>can_loop</c>/<c>cond_break</c>.
    /// </summary>
    public const byte MayGoto = ClsJmp | (byte)JmpOp.Jcond | K;

    // JMP32: 32-bit comparisons
    /// <summary>gotol: BPF_JMP32 | BPF_JA, goto +imm.</summary>
    public const byte Ja32 = ClsJmp32 | (byte)JmpOp.Ja | K;
    /// <summary>jeq32, imm source: jump if dst == src (low 32 bits).</summary>
    public const byte Jeq32Imm = ClsJmp32 | (byte)JmpOp.Jeq | K;
    /// <summary>jeq32, a register source: jump if dst == src (low 32 bits).</summary>
    public const byte Jeq32Reg = ClsJmp32 | (byte)JmpOp.Jeq | X;
    /// <summary>jgt32, imm source: jump if dst &gt; (unsigned) src (low 32 bits).</summary>
    public const byte Jgt32Imm = ClsJmp32 | (byte)JmpOp.Jgt | K;
    /// <summary>jgt32, a register source: jump if dst &gt; (unsigned) src (low 32 bits).</summary>
    public const byte Jgt32Reg = ClsJmp32 | (byte)JmpOp.Jgt | X;
    /// <summary>jge32, imm source: jump if dst &gt;= (unsigned) src (low 32 bits).</summary>
    public const byte Jge32Imm = ClsJmp32 | (byte)JmpOp.Jge | K;
    /// <summary>jge32, a register source: jump if dst &gt;= (unsigned) src (low 32 bits).</summary>
    public const byte Jge32Reg = ClsJmp32 | (byte)JmpOp.Jge | X;
    /// <summary>jset32, imm source: jump if dst &amp; (non-zero) src (low 32 bits).</summary>
    public const byte Jset32Imm = ClsJmp32 | (byte)JmpOp.Jset | K;
    /// <summary>jset32, a register source: jump if dst &amp; (non-zero) src (low 32 bits).</summary>
    public const byte Jset32Reg = ClsJmp32 | (byte)JmpOp.Jset | X;
    /// <summary>jne32, imm source: jump if dst != src (low 32 bits).</summary>
    public const byte Jne32Imm = ClsJmp32 | (byte)JmpOp.Jne | K;
    /// <summary>jne32, a register source: jump if dst != src (low 32 bits).</summary>
    public const byte Jne32Reg = ClsJmp32 | (byte)JmpOp.Jne | X;
    /// <summary>jsgt32, imm source: jump if dst &gt; (signed) src (low 32 bits).</summary>
    public const byte Jsgt32Imm = ClsJmp32 | (byte)JmpOp.Jsgt | K;
    /// <summary>jsgt32, a register source: jump if dst &gt; (signed) src (low 32 bits).</summary>
    public const byte Jsgt32Reg = ClsJmp32 | (byte)JmpOp.Jsgt | X;
    /// <summary>jsge32, imm source: jump if dst &gt;= (signed) src (low 32 bits).</summary>
    public const byte Jsge32Imm = ClsJmp32 | (byte)JmpOp.Jsge | K;
    /// <summary>jsge32, a register source: jump if dst &gt;= (signed) src (low 32 bits).</summary>
    public const byte Jsge32Reg = ClsJmp32 | (byte)JmpOp.Jsge | X;
    /// <summary>jlt32, imm source: jump if dst &lt; (unsigned) src (low 32 bits).</summary>
    public const byte Jlt32Imm = ClsJmp32 | (byte)JmpOp.Jlt | K;
    /// <summary>jlt32, a register source: jump if dst &lt; (unsigned) src (low 32 bits).</summary>
    public const byte Jlt32Reg = ClsJmp32 | (byte)JmpOp.Jlt | X;
    /// <summary>jle32, imm source: jump if dst &lt;= (unsigned) src (low 32 bits).</summary>
    public const byte Jle32Imm = ClsJmp32 | (byte)JmpOp.Jle | K;
    /// <summary>jle32, a register source: jump if dst &lt;= (unsigned) src (low 32 bits).</summary>
    public const byte Jle32Reg = ClsJmp32 | (byte)JmpOp.Jle | X;
    /// <summary>jslt32, imm source: jump if dst &lt; (signed) src (low 32 bits).</summary>
    public const byte Jslt32Imm = ClsJmp32 | (byte)JmpOp.Jslt | K;
    /// <summary>jslt32, a register source: jump if dst &lt; (signed) src (low 32 bits).</summary>
    public const byte Jslt32Reg = ClsJmp32 | (byte)JmpOp.Jslt | X;
    /// <summary>jsle32, imm source: jump if dst &lt;= (signed) src (low 32 bits).</summary>
    public const byte Jsle32Imm = ClsJmp32 | (byte)JmpOp.Jsle | K;
    /// <summary>jsle32, a register source: jump if dst &lt;= (signed) src (low 32 bits).</summary>
    public const byte Jsle32Reg = ClsJmp32 | (byte)JmpOp.Jsle | X;

    // LD: ld_imm64 (the legacy packet loads BPF_ABS/BPF_IND are not run by any engine)
    /// <summary>ld_imm64: BPF_LD | BPF_IMM | BPF_DW, two slots; src says what the constant is (<see cref="Ld64Source"/>).</summary>
    public const byte LdImm64 = ClsLd | (byte)MemMode.Imm | DW;

    // LDX: loads, zero-extending (BPF_MEM) then sign-extending (BPF_MEMSX)
    /// <summary>dst = *(u32 *)(src + offset).</summary>
    public const byte LdxW = ClsLdx | Mem | W;
    /// <summary>dst = *(u16 *)(src + offset).</summary>
    public const byte LdxH = ClsLdx | Mem | H;
    /// <summary>dst = *(u8 *)(src + offset).</summary>
    public const byte LdxB = ClsLdx | Mem | B;
    /// <summary>dst = *(u64 *)(src + offset).</summary>
    public const byte LdxDW = ClsLdx | Mem | DW;
    /// <summary>dst = *(s32 *)(src + offset), sign-extended to 64 bits.</summary>
    public const byte LdxSW = ClsLdx | MemSx | W;
    /// <summary>dst = *(s16 *)(src + offset), sign-extended to 64 bits.</summary>
    public const byte LdxSH = ClsLdx | MemSx | H;
    /// <summary>dst = *(s8 *)(src + offset), sign-extended to 64 bits.</summary>
    public const byte LdxSB = ClsLdx | MemSx | B;

    // ST: stores of the immediate
    /// <summary>*(u32 *)(dst + offset) = imm.</summary>
    public const byte StW = ClsSt | Mem | W;
    /// <summary>*(u16 *)(dst + offset) = imm.</summary>
    public const byte StH = ClsSt | Mem | H;
    /// <summary>*(u8 *)(dst + offset) = imm.</summary>
    public const byte StB = ClsSt | Mem | B;
    /// <summary>*(u64 *)(dst + offset) = imm.</summary>
    public const byte StDW = ClsSt | Mem | DW;

    // STX: stores of a register, then the atomics (the operation is in imm: <see cref="AtomicOp"/>)
    /// <summary>*(u32 *)(dst + offset) = src.</summary>
    public const byte StxW = ClsStx | Mem | W;
    /// <summary>*(u16 *)(dst + offset) = src.</summary>
    public const byte StxH = ClsStx | Mem | H;
    /// <summary>*(u8 *)(dst + offset) = src.</summary>
    public const byte StxB = ClsStx | Mem | B;
    /// <summary>*(u64 *)(dst + offset) = src.</summary>
    public const byte StxDW = ClsStx | Mem | DW;
    /// <summary>A 32-bit atomic read-modify-write of *(u32 *)(dst + offset) (<see cref="AtomicOp"/> in imm).</summary>
    public const byte AtomicW = ClsStx | Atomic | W;
    /// <summary>A 64-bit atomic read-modify-write of *(u64 *)(dst + offset) (<see cref="AtomicOp"/> in imm).</summary>
    public const byte AtomicDW = ClsStx | Atomic | DW;
}
