using BpfJit.Frontend;

namespace BpfJit.Tests.Jit;

/// <summary>
/// One case of the instruction-family table: assembly (bpf_conformance syntax), the input memory,
/// and the expected r0 or the expected error text. Every case runs on every engine.
/// </summary>
public sealed record FamilyCase(string Family, string Name, string Asm, ulong? Expected, string? Error = null, byte[]? Memory = null)
{
    /// <summary>16 bytes of input memory the memory cases read: 11 22 33 ... ff 80.</summary>
    public static readonly byte[] Sample = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x80];

    public override string ToString() => $"{Family}: {Name}";
}

/// <summary>The table: ALU64, ALU32, byte swaps, loads/stores, atomics, jumps, calls.</summary>
public static class FamilyTable
{
    static FamilyCase C(string family, string name, string asm, ulong expected, byte[]? memory = null) =>
        new(family, name, asm.Replace("; ", "\n") + "\nexit", expected, null, memory);

    static FamilyCase E(string family, string name, string asm, string error) =>
        new(family, name, asm.Replace("; ", "\n") + "\nexit", null, error);

    public static IEnumerable<FamilyCase> All() =>
        Alu64().Concat(Alu32()).Concat(Swaps()).Concat(Memory()).Concat(Atomics()).Concat(Jumps()).Concat(Calls());

    static IEnumerable<FamilyCase> Alu64()
    {
        const string F = "alu64";
        yield return C(F, "add imm (sign-extended)", "mov %r0, 5; add %r0, -7", 0xfffffffffffffffe);
        yield return C(F, "add reg", "mov %r0, 5; mov %r1, 7; add %r0, %r1", 12);
        yield return C(F, "sub wraps", "mov %r0, 5; sub %r0, 7", 0xfffffffffffffffe);
        yield return C(F, "mul", "lddw %r0, 0x100000001; mul %r0, 3", 0x300000003);
        yield return C(F, "div is unsigned", "lddw %r0, 0xffffffffffffffff; div %r0, 2", 0x7fffffffffffffff);
        yield return C(F, "div by zero register is 0", "mov %r0, 9; mov %r1, 0; div %r0, %r1", 0);
        yield return C(F, "div by zero imm is 0", "mov %r0, 9; div %r0, 0", 0);
        yield return C(F, "mod", "mov %r0, 17; mov %r1, 5; mod %r0, %r1", 2);
        yield return C(F, "mod by zero keeps dst", "mov %r0, 9; mov %r1, 0; mod %r0, %r1", 9);
        yield return C(F, "sdiv truncates", "mov %r0, -7; sdiv %r0, 2", 0xfffffffffffffffd);
        yield return C(F, "sdiv LLONG_MIN / -1", "lddw %r0, 0x8000000000000000; mov %r1, -1; sdiv %r0, %r1", 0x8000000000000000);
        yield return C(F, "sdiv by zero", "mov %r0, -7; mov %r1, 0; sdiv %r0, %r1", 0);
        yield return C(F, "smod sign of dividend", "mov %r0, -7; smod %r0, 3", 0xffffffffffffffff);
        yield return C(F, "smod by -1", "mov %r0, -7; smod %r0, -1", 0);
        yield return C(F, "smod by zero keeps dst", "mov %r0, -7; mov %r1, 0; smod %r0, %r1", 0xfffffffffffffff9);
        yield return C(F, "or", "mov %r0, 0xf0; or %r0, 0x0f", 0xff);
        yield return C(F, "and imm sign-extended", "lddw %r0, 0x12345678ffffffff; and %r0, -256", 0x12345678ffffff00);
        yield return C(F, "xor", "mov %r0, 0; xor %r0, -1", 0xffffffffffffffff);
        yield return C(F, "lsh masks the count to 6 bits", "mov %r0, 1; mov %r1, 65; lsh %r0, %r1", 2);
        yield return C(F, "lsh imm", "mov %r0, 1; lsh %r0, 63", 0x8000000000000000);
        yield return C(F, "rsh is logical", "mov %r0, -1; rsh %r0, 60", 0xf);
        yield return C(F, "rsh reg masked", "mov %r0, -1; mov %r1, 124; rsh %r0, %r1", 0xf);
        yield return C(F, "arsh is arithmetic", "mov %r0, -16; arsh %r0, 2", 0xfffffffffffffffc);
        yield return C(F, "arsh reg", "mov %r0, -16; mov %r1, 66; arsh %r0, %r1", 0xfffffffffffffffc);
        yield return C(F, "neg", "mov %r0, 5; neg %r0", 0xfffffffffffffffb);
        yield return C(F, "mov imm sign-extends", "mov %r0, -1", 0xffffffffffffffff);
        yield return C(F, "mov reg", "lddw %r1, 0x123456789abcdef0; mov %r0, %r1", 0x123456789abcdef0);
        yield return C(F, "movsx8", "mov %r1, 0x80; movsx864 %r0, %r1", 0xffffffffffffff80);
        yield return C(F, "movsx16", "mov %r1, 0x8000; movsx1664 %r0, %r1", 0xffffffffffff8000);
        yield return C(F, "movsx32", "lddw %r1, 0x180000000; movsx3264 %r0, %r1", 0xffffffff80000000);
        yield return C(F, "ld_imm64", "lddw %r0, 0x8000000000000001", 0x8000000000000001);
    }

    static IEnumerable<FamilyCase> Alu32()
    {
        const string F = "alu32";
        yield return C(F, "add wraps and zero-extends", "lddw %r0, 0x1ffffffff; add32 %r0, 1", 0);
        yield return C(F, "sub zero-extends", "mov %r0, 0; sub32 %r0, 1", 0xffffffff);
        yield return C(F, "mul truncates", "mov %r0, 0x10000; mul32 %r0, %r0", 0);
        yield return C(F, "div by zero", "mov32 %r0, 7; mov %r1, 0; div32 %r0, %r1", 0);
        yield return C(F, "div uses the low 32 bits of the divisor", "lddw %r1, 0x100000000; mov %r0, 7; div32 %r0, %r1", 0);
        yield return C(F, "div unsigned", "mov32 %r0, -1; div32 %r0, 2", 0x7fffffff);
        yield return C(F, "mod by zero keeps the low 32 bits", "lddw %r0, 0x100000009; mov %r1, 0; mod32 %r0, %r1", 9);
        yield return C(F, "sdiv", "mov32 %r0, -7; sdiv32 %r0, 2", 0xfffffffd);
        yield return C(F, "sdiv INT_MIN / -1", "lddw %r0, 0x80000000; sdiv32 %r0, -1", 0x80000000);
        yield return C(F, "smod", "mov32 %r0, -7; smod32 %r0, 3", 0xffffffff);
        yield return C(F, "smod by -1", "mov32 %r0, -7; smod32 %r0, -1", 0);
        yield return C(F, "or clears the high half", "lddw %r0, 0x1000000f0; or32 %r0, 0xf", 0xff);
        yield return C(F, "and", "lddw %r0, 0xffffffffffffffff; and32 %r0, 0xf0f0", 0xf0f0);
        yield return C(F, "xor", "lddw %r0, 0xffffffff00000000; xor32 %r0, -1", 0xffffffff);
        yield return C(F, "lsh masks the count to 5 bits", "mov %r0, 1; lsh32 %r0, 33", 2);
        yield return C(F, "lsh drops the carry", "mov %r0, 0x40000000; lsh32 %r0, 2", 0);
        yield return C(F, "rsh logical on the low half", "lddw %r0, 0xffffffff80000000; rsh32 %r0, 4", 0x08000000);
        yield return C(F, "rsh reg masked", "mov32 %r0, -1; mov %r1, 60; rsh32 %r0, %r1", 0xf);
        yield return C(F, "arsh", "lddw %r0, 0x80000000; arsh32 %r0, 4", 0xf8000000);
        yield return C(F, "arsh reg", "lddw %r0, 0x80000000; mov %r1, 36; arsh32 %r0, %r1", 0xf8000000);
        yield return C(F, "neg", "mov %r0, 1; neg32 %r0", 0xffffffff);
        yield return C(F, "mov reg zero-extends", "mov %r1, -1; mov32 %r0, %r1", 0xffffffff);
        yield return C(F, "mov imm zero-extends", "mov32 %r0, -1", 0xffffffff);
        yield return C(F, "movsx8", "mov %r1, 0x80; movsx832 %r0, %r1", 0xffffff80);
        yield return C(F, "movsx16", "mov %r1, 0x8000; movsx1632 %r0, %r1", 0xffff8000);
    }

    static IEnumerable<FamilyCase> Swaps()
    {
        const string F = "byteswap";
        const string V = "lddw %r0, 0x1122334455667788; ";
        yield return C(F, "le16", V + "le16 %r0", 0x7788);
        yield return C(F, "le32", V + "le32 %r0", 0x55667788);
        yield return C(F, "le64", V + "le64 %r0", 0x1122334455667788);
        yield return C(F, "be16", V + "be16 %r0", 0x8877);
        yield return C(F, "be32", V + "be32 %r0", 0x88776655);
        yield return C(F, "be64", V + "be64 %r0", 0x8877665544332211);
        yield return C(F, "bswap16", V + "bswap16 %r0", 0x8877);
        yield return C(F, "bswap32", V + "bswap32 %r0", 0x88776655);
        yield return C(F, "bswap64", V + "bswap64 %r0", 0x8877665544332211);
    }

    static IEnumerable<FamilyCase> Memory()
    {
        const string F = "memory";
        var m = FamilyCase.Sample;
        yield return C(F, "ldxb", "ldxb %r0, [%r1+15]", 0x80, m);
        yield return C(F, "ldxh unaligned", "ldxh %r0, [%r1+1]", 0x3322, m);
        yield return C(F, "ldxw unaligned", "ldxw %r0, [%r1+3]", 0x77665544, m);
        yield return C(F, "ldxdw unaligned", "ldxdw %r0, [%r1+1]", 0x9988776655443322, m);
        yield return C(F, "ldxdw negative offset", "add %r1, 8; ldxdw %r0, [%r1-8]", 0x8877665544332211, m);
        yield return C(F, "ldxsb", "ldxsb %r0, [%r1+15]", 0xffffffffffffff80, m);
        yield return C(F, "ldxsh", "ldxsh %r0, [%r1+14]", 0xffffffffffff80ff, m);
        yield return C(F, "ldxsw", "ldxsw %r0, [%r1+12]", 0xffffffff80ffeedd, m);
        yield return C(F, "ldxsw positive", "ldxsw %r0, [%r1+0]", 0x44332211, m);
        yield return C(F, "stack starts zeroed", "ldxdw %r0, [%r10-512]; ldxdw %r1, [%r10-8]; or %r0, %r1", 0);
        yield return C(F, "stdw imm sign-extends", "stdw [%r10-8], -1; ldxdw %r0, [%r10-8]", 0xffffffffffffffff);
        yield return C(F, "stw", "stw [%r10-8], -1; ldxdw %r0, [%r10-8]", 0xffffffff);
        yield return C(F, "sth unaligned", "sth [%r10-7], 0x1234; ldxdw %r0, [%r10-8]", 0x123400);
        yield return C(F, "stb", "stb [%r10-1], 0xab; ldxdw %r0, [%r10-8]", 0xab00000000000000);
        const string V = "lddw %r2, 0x1122334455667788; ";
        yield return C(F, "stxdw", V + "stxdw [%r10-8], %r2; ldxdw %r0, [%r10-8]", 0x1122334455667788);
        yield return C(F, "stxw", V + "stxw [%r10-8], %r2; ldxdw %r0, [%r10-8]", 0x55667788);
        yield return C(F, "stxh", V + "stxh [%r10-8], %r2; ldxdw %r0, [%r10-8]", 0x7788);
        yield return C(F, "stxb", V + "stxb [%r10-8], %r2; ldxdw %r0, [%r10-8]", 0x88);
        yield return C(F, "stxdw to input memory, unaligned", V + "stxdw [%r1+3], %r2; ldxdw %r0, [%r1+3]", 0x1122334455667788, m);
        yield return C(F, "stxh to input memory keeps neighbours", V + "stxh [%r1+1], %r2; ldxdw %r0, [%r1+0]", 0x8877665544778811, m);
        yield return C(F, "r10 copied and offset", "mov %r3, %r10; sub %r3, 16; stdw [%r3+0], 7; ldxdw %r0, [%r10-16]", 7);
    }

    static IEnumerable<FamilyCase> Atomics()
    {
        const string F = "atomic";
        // Memory M at [r10-8], r1 = 10; the result packs the memory after the operation with r1 << 40.
        const string Init64 = "mov %r2, 12; stxdw [%r10-8], %r2; mov %r1, 10; ";
        const string Init32 = "lddw %r2, 0x10000000c; stxdw [%r10-8], %r2; mov %r1, 10; ";
        const string Pack = "; ldxdw %r0, [%r10-8]; lsh %r1, 40; or %r0, %r1";
        yield return C(F, "add", Init64 + "lock add [%r10-8], %r1" + Pack, 0xa0000000016);
        yield return C(F, "fetch add", Init64 + "lock fetch add [%r10-8], %r1" + Pack, 0xc0000000016);
        yield return C(F, "or", Init64 + "lock or [%r10-8], %r1" + Pack, 0xa000000000e);
        yield return C(F, "fetch or", Init64 + "lock fetch or [%r10-8], %r1" + Pack, 0xc000000000e);
        yield return C(F, "and", Init64 + "lock and [%r10-8], %r1" + Pack, 0xa0000000008);
        yield return C(F, "fetch and", Init64 + "lock fetch and [%r10-8], %r1" + Pack, 0xc0000000008);
        yield return C(F, "xor", Init64 + "lock xor [%r10-8], %r1" + Pack, 0xa0000000006);
        yield return C(F, "fetch xor", Init64 + "lock fetch xor [%r10-8], %r1" + Pack, 0xc0000000006);
        yield return C(F, "xchg", Init64 + "lock xchg [%r10-8], %r1" + Pack, 0xc000000000a);
        yield return C(F, "add32 keeps the high word", Init32 + "lock add32 [%r10-8], %r1" + Pack, 0xa0100000016);
        yield return C(F, "fetch add32", Init32 + "lock fetch add32 [%r10-8], %r1" + Pack, 0xc0100000016);
        yield return C(F, "fetch add32 wraps", "stw [%r10-8], -1; mov %r1, 1; lock fetch add32 [%r10-8], %r1" + Pack, 0xffffff0000000000);
        yield return C(F, "or32", Init32 + "lock or32 [%r10-8], %r1" + Pack, 0xa010000000e);
        yield return C(F, "fetch or32", Init32 + "lock fetch or32 [%r10-8], %r1" + Pack, 0xc010000000e);
        yield return C(F, "and32", Init32 + "lock and32 [%r10-8], %r1" + Pack, 0xa0100000008);
        yield return C(F, "fetch and32", Init32 + "lock fetch and32 [%r10-8], %r1" + Pack, 0xc0100000008);
        yield return C(F, "xor32", Init32 + "lock xor32 [%r10-8], %r1" + Pack, 0xa0100000006);
        yield return C(F, "fetch xor32", Init32 + "lock fetch xor32 [%r10-8], %r1" + Pack, 0xc0100000006);
        yield return C(F, "xchg32", Init32 + "lock xchg32 [%r10-8], %r1" + Pack, 0xc010000000a);
        // cmpxchg: r0 gets the old value; the result packs r0 with the new memory << 40.
        const string PackCmp = "; ldxw %r2, [%r10-8]; lsh %r2, 40; or %r0, %r2";
        yield return C(F, "cmpxchg match", Init64 + "mov %r0, 12; lock cmpxchg [%r10-8], %r1" + PackCmp, 0xa000000000c);
        yield return C(F, "cmpxchg mismatch", Init64 + "mov %r0, 5; lock cmpxchg [%r10-8], %r1" + PackCmp, 0xc000000000c);
        yield return C(F, "cmpxchg32 compares the low half of r0", Init32 + "lddw %r0, 0x50000000c; lock cmpxchg32 [%r10-8], %r1" + PackCmp, 0xa000000000c);
        yield return C(F, "cmpxchg32 mismatch", Init32 + "mov %r0, 5; lock cmpxchg32 [%r10-8], %r1" + PackCmp, 0xc000000000c);
        yield return C(F, "on input memory", "mov %r2, 1; lock fetch add [%r1+8], %r2; ldxdw %r0, [%r1+8]; sub %r0, %r2", 1, FamilyCase.Sample);
    }

    static readonly (string Name, Func<ulong, ulong, bool> Taken64, Func<uint, uint, bool> Taken32)[] s_jumps =
    [
        ("jeq", (a, b) => a == b, (a, b) => a == b),
        ("jne", (a, b) => a != b, (a, b) => a != b),
        ("jgt", (a, b) => a > b, (a, b) => a > b),
        ("jge", (a, b) => a >= b, (a, b) => a >= b),
        ("jlt", (a, b) => a < b, (a, b) => a < b),
        ("jle", (a, b) => a <= b, (a, b) => a <= b),
        ("jsgt", (a, b) => (long)a > (long)b, (a, b) => (int)a > (int)b),
        ("jsge", (a, b) => (long)a >= (long)b, (a, b) => (int)a >= (int)b),
        ("jslt", (a, b) => (long)a < (long)b, (a, b) => (int)a < (int)b),
        ("jsle", (a, b) => (long)a <= (long)b, (a, b) => (int)a <= (int)b),
        ("jset", (a, b) => (a & b) != 0, (a, b) => (a & b) != 0),
    ];

    static readonly (ulong A, int B)[] s_operands =
    [
        (1, 2), (2, 1), (5, 5), (ulong.MaxValue, 1), (1, -1), (0x100000001, 1), (0x80000000, 0x7fffffff),
        (0x7fffffffffffffff, -1), (0xffffffff00000000, 0), (6, 3),
    ];

    static IEnumerable<FamilyCase> Jumps()
    {
        foreach (var (name, taken64, taken32) in s_jumps)
            foreach (var (a, b) in s_operands)
                foreach (bool is32 in (bool[])[false, true])
                    foreach (bool reg in (bool[])[false, true])
                    {
                        ulong bv = (ulong)(long)b;
                        bool taken = is32 ? taken32((uint)a, (uint)bv) : taken64(a, bv);
                        string op = name + (is32 ? "32" : "");
                        string src = reg ? "%r2" : b.ToString(System.Globalization.CultureInfo.InvariantCulture);
                        string asm = $"lddw %r1, 0x{a:x}; lddw %r2, 0x{bv:x}; mov %r0, 1; {op} %r1, {src}, yes; mov %r0, 2; yes:";
                        yield return C(is32 ? "jmp32" : "jmp", $"{op} 0x{a:x}, {(reg ? "reg" : "imm")} {b} -> {(taken ? "taken" : "not taken")}", asm, taken ? 1UL : 2UL);
                    }
        yield return C("jmp", "ja skips", "mov %r0, 1; ja out; mov %r0, 2; out:", 1);
        yield return C("jmp32", "ja32 (gotol) skips", "mov %r0, 1; ja32 out; mov %r0, 2; out:", 1);
        yield return C("jmp", "backward loop", "mov %r0, 0; mov %r1, 10; loop: add %r0, %r1; sub %r1, 1; jne %r1, 0, loop", 55);
        yield return C("jmp", "jump over lddw", "mov %r0, 1; ja out; lddw %r0, 0x1234567890; out:", 1);
        yield return C("jmp", "jump to lddw", "mov %r0, 1; jeq %r0, 1, load; mov %r0, 2; exit; load: lddw %r0, 0x1234567890", 0x1234567890);
        // may_goto falls through BPF_MAX_LOOPS (8M) times per frame, then jumps, and keeps jumping.
        yield return C("jmp", "may_goto falls through 8M times", "mov %r0, 0; loop: may_goto out; add %r0, 1; ja loop; out:", 8UL << 20);
        yield return C("jmp", "may_goto jumps once the budget is spent",
            "mov %r0, 0; loop: may_goto out; add %r0, 1; ja loop; out: may_goto done; add %r0, 100; done:", 8UL << 20);
        yield return C("jmp", "may_goto: a called frame has its own budget and the caller's is kept",
            "mov %r6, 0; mov %r7, 0; l1: may_goto o1; add %r6, 1; jne %r7, 0, l1; mov %r7, 1; call local f; mov %r8, %r0; ja l1; " +
            "o1: mov %r0, %r6; add %r0, %r8; exit; f: mov %r0, 0; l2: may_goto o2; add %r0, 1; ja l2; o2:", 16UL << 20);
    }

    static IEnumerable<FamilyCase> Calls()
    {
        const string F = "call";
        yield return C(F, "helper (static call)", "mov %r1, 7; call 2", 1);
        yield return C(F, "helper result used", "mov %r1, 6; call 2; add %r0, 40", 40);
        yield return C(F, "unwind helper returning non-zero continues", "mov %r1, 3; call 5; add %r0, 1", 4);
        yield return C(F, "unwind helper returning 0 ends the program", "mov %r1, 0; call 5; mov %r0, 9", 0);
        yield return C(F, "unwind from a nested frame ends every frame",
            "mov %r0, 1; call local f; mov %r0, 77; exit; f: mov %r1, 0; call 5; mov %r0, 5", 0);
        yield return C(F, "callx", "mov %r2, 2; mov %r1, 3; call %r2", 1);
        yield return C(F, "callx unwind", "mov %r2, 5; mov %r1, 0; call %r2; mov %r0, 9", 0);
        yield return E(F, "callx unknown helper", "mov %r2, 99; call %r2", "callx to unknown helper 99");
        yield return E(F, "callx negative id", "mov %r2, -1; call %r2", "callx to unknown helper 18446744073709551615");
        yield return C(F, "local call preserves r6-r9",
            "mov %r6, 1; mov %r7, 2; mov %r8, 3; mov %r9, 4; call local f; add %r0, %r6; add %r0, %r7; add %r0, %r8; add %r0, %r9; exit;" +
            " f: mov %r6, 100; mov %r7, 100; mov %r8, 100; mov %r9, 100; mov %r0, 1000", 1010);
        yield return C(F, "local call gets its own stack frame",
            "stdw [%r10-8], 1; call local f; ldxdw %r1, [%r10-8]; lsh %r0, 8; or %r0, %r1; exit; f: stdw [%r10-8], 2; ldxdw %r0, [%r10-8]", 0x201);
        yield return C(F, "local call sees r1-r5 and returns r0", "mov %r1, 20; mov %r2, 22; call local f; exit; f: mov %r0, %r1; add %r0, %r2", 42);
        yield return C(F, "nested local calls", "mov %r0, 0; call local f; add %r0, 1; exit; f: call local g; add %r0, 10; exit; g: add %r0, 100", 111);
        yield return C(F, "recursion within 8 frames",
            "mov %r0, 0; mov %r1, 6; call local f; exit; f: jeq %r1, 0, out; sub %r1, 1; call local f; add %r0, 1; out:", 6);
        yield return E(F, "recursion past 8 frames",
            "mov %r0, 0; mov %r1, 7; call local f; exit; f: jeq %r1, 0, out; sub %r1, 1; call local f; add %r0, 1; out:", "call stack overflow");
        yield return E(F, "unbounded recursion", "call local f; exit; f: call local f", "call stack overflow");
    }
}
