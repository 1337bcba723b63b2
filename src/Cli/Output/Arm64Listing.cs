using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Gee.External.Capstone;
using Gee.External.Capstone.Arm64;

namespace BpfJit.Cli.Output;

/// <summary>
/// <c>dump --native</c> on arm64: RyuJIT's code read from the method's entry and disassembled with Capstone (Iced
/// decodes x86 only). As on x86-64, the method's length is not published: the code is decoded from the entry one
/// 4-byte instruction at a time until a <c>ret</c>, <c>b</c>, <c>br</c> or <c>brk</c> past every forward branch
/// target. Memory is read through a delegate, so that fixed bytes can stand in for a process's code.
/// </summary>
public static class Arm64Listing
{
    /// <summary>Upper bound on the bytes read from one method.</summary>
    const int MaxBytes = 1 << 20;

    /// <summary>
    /// The code a function pointer leads to: a precode stub (<c>ldr xN, =target</c> ... <c>br xN</c>, the target in
    /// a literal slot) is followed to its target, up to four hops.
    /// </summary>
    public static ulong FollowStubs(Func<ulong, int, byte[]> read, ulong address)
    {
        ArgumentNullException.ThrowIfNull(read);
        for (int hop = 0; hop < 4; hop++)
        {
            var literals = new ulong?[32];
            ulong? next = null;
            for (int i = 0; i < 4 && next == null; i++)
            {
                ulong pc = address + (ulong)(4 * i);
                uint insn = Word(read, pc);
                if ((insn & 0xFF000000) == 0x58000000)   // LDR Xt, label (64-bit literal)
                    literals[insn & 31] = pc + (ulong)(SignExtend(insn >> 5, 19) * 4);
                else if ((insn & 0xFFFFFC1F) == 0xD61F0000 && literals[(insn >> 5) & 31] is ulong slot)   // BR Xn, Xn loaded above
                    next = BinaryPrimitives.ReadUInt64LittleEndian(read(slot, 8));
                else if ((insn & 0xFC000000) == 0x14000000 && i == 0)   // B label: a jump stub
                    next = address + (ulong)(SignExtend(insn, 26) * 4);
                else if ((insn & 0xFF000000) != 0x58000000) break;      // not a stub: the code itself
            }
            if (next is not ulong target || target == address) return address;
            address = target;
        }
        return address;
    }

    /// <summary>The method's bytes from <paramref name="address"/>: to the first return or jump past every forward branch target.</summary>
    public static byte[] MethodBytes(Func<ulong, int, byte[]> read, ulong address)
    {
        ArgumentNullException.ThrowIfNull(read);
        ulong furthest = address, ip = address;
        var bytes = new List<byte>();
        while (bytes.Count < MaxBytes)
        {
            uint insn = Word(read, ip);
            bytes.AddRange(BitConverter.GetBytes(insn));
            ulong? target = BranchTarget(insn, ip);
            ip += 4;
            if (target is ulong t && t > furthest && t - address < MaxBytes) furthest = t;
            bool ends = (insn & 0xFFFFFC1F) is 0xD65F0000 or 0xD61F0000   // RET, BR
                || (insn & 0xFC000000) == 0x14000000                      // B
                || (insn & 0xFFE0001F) == 0xD4200000;                     // BRK
            if (ends && ip > furthest) break;
        }
        return [.. bytes];
    }

    // The target of a direct branch: B, BL, B.cond, CBZ/CBNZ, TBZ/TBNZ.
    static ulong? BranchTarget(uint insn, ulong pc)
    {
        long? offset =
            (insn & 0x7C000000) == 0x14000000 ? SignExtend(insn, 26) * 4 :                  // B, BL
            (insn & 0xFF000010) == 0x54000000 ? SignExtend(insn >> 5, 19) * 4 :             // B.cond
            (insn & 0x7E000000) == 0x34000000 ? SignExtend(insn >> 5, 19) * 4 :             // CBZ, CBNZ
            (insn & 0x7E000000) == 0x36000000 ? SignExtend(insn >> 5, 14) * 4 : null;       // TBZ, TBNZ
        return offset is long o ? pc + (ulong)o : null;
    }

    static long SignExtend(uint value, int bits) => (long)((ulong)value << (64 - bits)) >> (64 - bits);

    static uint Word(Func<ulong, int, byte[]> read, ulong address) => BinaryPrimitives.ReadUInt32LittleEndian(read(address, 4));

    /// <summary>The disassembly, one instruction a line: <c>0008: 00 1c 00 91              add x0, x0, #7</c>, offsets from <paramref name="address"/>.</summary>
    public static string Format(nint address, byte[] code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var sb = new StringBuilder();
        using var disassembler = CapstoneDisassembler.CreateArm64Disassembler(Arm64DisassembleMode.LittleEndian);
        // Data in the code (a literal pool) does not decode: it is shown as a word, and decoding goes on after it.
        disassembler.EnableSkipDataMode = true;
        disassembler.SkipDataInstructionMnemonic = ".word";
        foreach (var ins in disassembler.Disassemble(code, address))
        {
            int offset = (int)(ins.Address - address);
            string text = $"{ins.Mnemonic,-8}{ins.Operand}".TrimEnd();
            sb.Append(offset.ToString("x4", CultureInfo.InvariantCulture)).Append(": ")
              .Append(Convert.ToHexString(ins.Bytes).ToLowerInvariant().PadRight(24)).Append(' ').AppendLine(text);
        }
        return sb.ToString();
    }
}
