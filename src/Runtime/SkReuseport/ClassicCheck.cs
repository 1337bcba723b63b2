using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>Classic BPF opcodes and offsets (<c>include/uapi/linux/filter.h</c>, <c>bpf_common.h</c>).</summary>
static class Cbpf
{
    public const ushort Ld = 0x00, Ldx = 0x01, St = 0x02, Stx = 0x03, Alu = 0x04, Jmp = 0x05, Ret = 0x06, Misc = 0x07;
    public const ushort W = 0x00, H = 0x08, B = 0x10;
    public const ushort Imm = 0x00, Abs = 0x20, Ind = 0x40, Mem = 0x60, Len = 0x80, Msh = 0xa0;
    public const ushort Add = 0x00, Sub = 0x10, Mul = 0x20, Div = 0x30, Or = 0x40, And = 0x50, Lsh = 0x60, Rsh = 0x70,
        Neg = 0x80, Mod = 0x90, Xor = 0xa0;
    public const ushort Ja = 0x00, Jeq = 0x10, Jgt = 0x20, Jge = 0x30, Jset = 0x40;
    public const ushort K = 0x00, X = 0x08, A = 0x10;
    public const ushort Tax = 0x00, Txa = 0x80;

    /// <summary><c>SKF_AD_OFF</c>, <c>SKF_NET_OFF</c>, <c>SKF_LL_OFF</c> as the signed offsets they are.</summary>
    public const int AdOff = -0x1000, NetOff = -0x100000, LlOff = -0x200000;

    /// <summary><c>SKF_AD_*</c>: the ancillary loads <c>bpf_anc_helper</c> knows (offsets from <c>SKF_AD_OFF</c>).</summary>
    public const uint AdProtocol = 0, AdPktType = 4, AdIfindex = 8, AdNlattr = 12, AdNlattrNest = 16, AdMark = 20, AdQueue = 24,
        AdHatype = 28, AdRxhash = 32, AdCpu = 36, AdAluXorX = 40, AdVlanTag = 44, AdVlanTagPresent = 48, AdPayOffset = 52,
        AdRandom = 56, AdVlanTpid = 60;

    // chk_code_allowed's table.
    static readonly HashSet<ushort> s_allowed =
    [
        Alu | Add | K, Alu | Add | X, Alu | Sub | K, Alu | Sub | X, Alu | Mul | K, Alu | Mul | X, Alu | Div | K, Alu | Div | X,
        Alu | Mod | K, Alu | Mod | X, Alu | And | K, Alu | And | X, Alu | Or | K, Alu | Or | X, Alu | Xor | K, Alu | Xor | X,
        Alu | Lsh | K, Alu | Lsh | X, Alu | Rsh | K, Alu | Rsh | X, Alu | Neg,
        Ld | W | Abs, Ld | H | Abs, Ld | B | Abs, Ld | W | Len, Ld | W | Ind, Ld | H | Ind, Ld | B | Ind, Ld | Imm, Ld | Mem,
        Ldx | W | Len, Ldx | B | Msh, Ldx | Imm, Ldx | Mem,
        St, Stx, Misc | Tax, Misc | Txa, Ret | K, Ret | A,
        Jmp | Ja, Jmp | Jeq | K, Jmp | Jeq | X, Jmp | Jge | K, Jmp | Jge | X, Jmp | Jgt | K, Jmp | Jgt | X, Jmp | Jset | K, Jmp | Jset | X,
    ];

    public static bool Allowed(ushort code) => s_allowed.Contains(code);

    public static bool IsConditional(ushort code) => (code & 0x07) == Jmp && (code & 0xf0) != Ja;

    /// <summary>An ABS load of a known ancillary field (<c>bpf_anc_helper</c>: any size, offsets SKF_AD_OFF + 0..60 step 4).</summary>
    public static bool IsAncillary(in SockFilter f)
    {
        if ((f.Code & 0xe7) != (Ld | Abs) || (f.Code & 0x18) == 0x18 || f.K < unchecked((uint)AdOff)) return false;
        uint o = f.K - unchecked((uint)AdOff);
        return o <= AdVlanTpid && o % 4 == 0;
    }
}

/// <summary><c>bpf_check_classic</c> and <c>check_load_and_stores</c>: what SO_ATTACH_REUSEPORT_CBPF refuses, with -EINVAL.</summary>
static class ClassicCheck
{
    public static void Check(SockFilter[] f)
    {
        int n = f.Length;
        if (n == 0 || n > ClassicFilter.MaxInstructions)
            throw Invalid($"classic BPF: {n} instructions (1..{ClassicFilter.MaxInstructions})");
        for (int pc = 0; pc < n; pc++)
        {
            var i = f[pc];
            if (!Cbpf.Allowed(i.Code)) throw Invalid($"insn {pc}: unknown opcode 0x{i.Code:x2}");
            switch (i.Code)
            {
                case Cbpf.Alu | Cbpf.Div | Cbpf.K:
                case Cbpf.Alu | Cbpf.Mod | Cbpf.K:
                    if (i.K == 0) throw Invalid($"insn {pc}: division by constant 0");
                    break;
                case Cbpf.Alu | Cbpf.Lsh | Cbpf.K:
                case Cbpf.Alu | Cbpf.Rsh | Cbpf.K:
                    if (i.K >= 32) throw Invalid($"insn {pc}: shift by {i.K} (must be < 32)");
                    break;
                case Cbpf.Ld | Cbpf.Mem:
                case Cbpf.Ldx | Cbpf.Mem:
                case Cbpf.St:
                case Cbpf.Stx:
                    if (i.K >= ClassicFilter.MemoryWords) throw Invalid($"insn {pc}: scratch memory index {i.K} (must be < {ClassicFilter.MemoryWords})");
                    break;
                case Cbpf.Jmp | Cbpf.Ja:
                    // An unconditional jump's 32-bit offset must land inside the program, strictly forward.
                    if (i.K >= (uint)(n - pc - 1)) throw Invalid($"insn {pc}: jump out of range (ja +{i.K})");
                    break;
                case Cbpf.Ld | Cbpf.W | Cbpf.Abs:
                case Cbpf.Ld | Cbpf.H | Cbpf.Abs:
                case Cbpf.Ld | Cbpf.B | Cbpf.Abs:
                    if (i.K >= unchecked((uint)Cbpf.AdOff) && !Cbpf.IsAncillary(i))
                        throw Invalid($"insn {pc}: unknown ancillary load SKF_AD_OFF+{i.K - unchecked((uint)Cbpf.AdOff)}");
                    break;
                default:
                    if (Cbpf.IsConditional(i.Code) && (pc + i.Jt + 1 >= n || pc + i.Jf + 1 >= n))
                        throw Invalid($"insn {pc}: jump out of range (jt +{i.Jt}, jf +{i.Jf})");
                    break;
            }
        }
        if (f[n - 1].Code is not (Cbpf.Ret | Cbpf.K) and not (Cbpf.Ret | Cbpf.A))
            throw Invalid($"insn {n - 1}: the last instruction is not a RET");
        CheckLoadAndStores(f);
    }

    // check_load_and_stores: a scratch word is read only after a store on every path to the read. Each pc keeps the
    // words known written on all jumps into it; the fall-through carries on after anything but a jump (a RET included,
    // as the kernel's walk does).
    static void CheckLoadAndStores(SockFilter[] f)
    {
        var masks = new ushort[f.Length];
        Array.Fill(masks, (ushort)0xffff);
        ushort valid = 0;
        for (int pc = 0; pc < f.Length; pc++)
        {
            valid &= masks[pc];
            var i = f[pc];
            switch (i.Code)
            {
                case Cbpf.St:
                case Cbpf.Stx:
                    valid |= (ushort)(1 << (int)i.K);
                    break;
                case Cbpf.Ld | Cbpf.Mem:
                case Cbpf.Ldx | Cbpf.Mem:
                    if ((valid & (1 << (int)i.K)) == 0) throw Invalid($"insn {pc}: M[{i.K}] read before it is written on every path");
                    break;
                case Cbpf.Jmp | Cbpf.Ja:
                    masks[pc + 1 + (int)i.K] &= valid;
                    valid = 0xffff;
                    break;
                default:
                    if (Cbpf.IsConditional(i.Code))
                    {
                        masks[pc + 1 + i.Jt] &= valid;
                        masks[pc + 1 + i.Jf] &= valid;
                        valid = 0xffff;
                    }
                    break;
            }
        }
    }

    static SocketErrorException Invalid(string message) => new(Errno.EINVAL, "SO_ATTACH_REUSEPORT_CBPF: " + message);
}
