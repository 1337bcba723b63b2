using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// The abstract domains are sound: for random abstract scalars and concrete values inside them,
/// every ALU result and every branch refinement still contains the concrete outcome.
/// </summary>
[TestFixture]
public class DomainSoundnessTests
{
    static readonly ulong[] s_interesting = [0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 255, 256, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, long.MaxValue, 1UL << 63, ulong.MaxValue, ulong.MaxValue - 1];

    static bool Contains(in RegState r, ulong v) =>
        r.VarOff.Contains(Tnum.Const(v)) && v >= r.Umin && v <= r.Umax && (long)v >= r.Smin && (long)v <= r.Smax &&
        (uint)v >= r.U32Min && (uint)v <= r.U32Max && (int)(uint)v >= r.S32Min && (int)(uint)v <= r.S32Max;

    static ulong Pick(Random rng) => rng.Next(4) switch
    {
        0 => s_interesting[rng.Next(s_interesting.Length)],
        1 => s_interesting[rng.Next(s_interesting.Length)] + (ulong)(rng.Next(7) - 3),
        2 => (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 33),
        _ => (ulong)rng.Next(-300, 300),
    };

    static readonly JmpOp[] s_cmp = [JmpOp.Jeq, JmpOp.Jne, JmpOp.Jgt, JmpOp.Jge, JmpOp.Jlt, JmpOp.Jle, JmpOp.Jsgt, JmpOp.Jsge, JmpOp.Jslt, JmpOp.Jsle, JmpOp.Jset];

    // The concrete semantics are the engines' own (Semantics): the oracle is what the interpreter runs.
    static bool Holds(ulong a, ulong b, JmpOp op, bool is32) => Semantics.Condition(op, is32, a, b);

    /// <summary>An abstract scalar made by refining "unknown" with random comparisons, plus concrete members.</summary>
    static (RegState Reg, List<ulong> Members) RandomScalar(Random rng)
    {
        while (true)
        {
            var r = RegState.Unknown();
            int steps = rng.Next(4);
            for (int i = 0; i < steps; i++)
            {
                if (rng.Next(3) == 0)
                {
                    ScalarAlu.Apply(ref r, RegState.Known(Pick(rng)), AluOp.And, rng.Next(2) == 0);
                    continue;
                }
                var c = RegState.Known(Pick(rng));
                Branches.Refine(ref r, ref c, s_cmp[rng.Next(s_cmp.Length)], rng.Next(2) == 0);
            }
            if (!r.BoundsSane) continue;
            var members = new List<ulong>();
            for (int i = 0; i < 400 && members.Count < 12; i++)
            {
                ulong v = i < 200 ? Pick(rng) : r.Umin + (ulong)rng.Next(64);
                if (i % 7 == 0) v = r.VarOff.Value | ((ulong)rng.NextInt64() & r.VarOff.Mask);
                if (Contains(r, v)) members.Add(v);
            }
            if (members.Count > 0) return (r, members);
        }
    }

    static ulong Concrete(AluOp op, ulong a, ulong b, bool is32)
    {
        var ins = op == AluOp.Neg ? Ins.Neg(!is32, 0) : is32 ? Ins.Alu32Reg(op, 0, 1) : Ins.Alu64Reg(op, 0, 1);
        return Semantics.Alu(ins, a, b);
    }

    /// <summary>
    /// A shift amount for <see cref="AluIsSound"/>: a constant below the width, or (for 32-bit shifts) a register
    /// whose low half is such a constant and whose upper half is anything, which the kernel does not compute.
    /// </summary>
    static (RegState Reg, List<ulong> Members) ShiftAmount(Random rng, bool is32)
    {
        ulong k = (ulong)rng.Next(is32 ? 32 : 64);
        if (!is32 || rng.Next(3) != 0) return (RegState.Known(k), [k]);
        var r = RegState.Unknown();
        r.MarkKnown32((uint)k);
        r.Sync();
        return (r, [k, k | (1UL << 32), k | 0xffffffff00000000, k | ((ulong)rng.NextInt64() << 32)]);
    }

    /// <summary>Every ALU result contains the concrete results of its members.</summary>
    [Test]
    public void AluIsSound([Values(AluOp.Add, AluOp.Sub, AluOp.Mul, AluOp.And, AluOp.Or, AluOp.Xor, AluOp.Lsh, AluOp.Rsh, AluOp.Arsh, AluOp.Neg)] AluOp op,
                           [Values(false, true)] bool is32)
    {
        var rng = new Random((int)op * 2 + (is32 ? 1 : 0));
        for (int iter = 0; iter < 1500; iter++)
        {
            var (a, am) = RandomScalar(rng);
            var (b, bm) = op is AluOp.Lsh or AluOp.Rsh or AluOp.Arsh ? ShiftAmount(rng, is32) : RandomScalar(rng);
            var r = a;
            ScalarAlu.Apply(ref r, b, op, is32);
            foreach (var x in am)
                foreach (var y in bm)
                {
                    ulong v = Concrete(op, x, y, is32);
                    Assert.That(Contains(r, v), Is.True,
                        $"{op}{(is32 ? "32" : "")}: {x:x} op {y:x} = {v:x} not in {StateFormatter.Reg(r, [])} (a={StateFormatter.Reg(a, [])} b={StateFormatter.Reg(b, [])})");
                }
        }
    }

    /// <summary>The concrete result of a width change: movsx into 64 or 32 bits, a byte swap, a truncation.</summary>
    static ulong ConcreteCast(string kind, int bits, ulong x) => kind switch
    {
        "sx64" => Semantics.MovSx64(x, bits),
        "sx32" => Semantics.MovSx32(x, bits),
        "swap" => Semantics.Bswap(x, bits),
        _ => Semantics.Le(x, bits),
    };

    /// <summary>Sign extensions, byte swaps (bswap/be and le on a little-endian host) and truncations contain the concrete results.</summary>
    [Test]
    public void CastsAreSound([Values("sx64", "sx32", "swap", "trunc")] string kind)
    {
        int[] widths = kind switch { "sx64" => [8, 16, 32], "sx32" => [8, 16], _ => [16, 32, 64] };
        var rng = new Random(kind.Length * 31 + kind[1]);
        for (int iter = 0; iter < 4000; iter++)
        {
            var (a, am) = RandomScalar(rng);
            int bits = widths[rng.Next(widths.Length)];
            var r = a;
            switch (kind)
            {
                case "sx64": ScalarAlu.SignExtend(ref r, bits, alu32: false); break;
                case "sx32": ScalarAlu.SignExtend(ref r, bits, alu32: true); break;
                case "swap": ScalarAlu.ByteSwap(ref r, bits, swap: true); break;
                default: ScalarAlu.ByteSwap(ref r, bits, swap: false); break;
            }
            Assert.That(r.BoundsSane, Is.True, $"{kind}{bits}: insane {StateFormatter.Reg(r, [])} from {StateFormatter.Reg(a, [])}");
            foreach (var x in am)
            {
                ulong v = ConcreteCast(kind, bits, x);
                Assert.That(Contains(r, v), Is.True,
                    $"{kind}{bits}: {x:x} -> {v:x} not in {StateFormatter.Reg(r, [])} (from {StateFormatter.Reg(a, [])})");
            }
        }
    }

    /// <summary>Both sides of a comparison keep every member for which that side holds, and a decided branch is right.</summary>
    [Test]
    public void BranchRefinementIsSound([Values(false, true)] bool is32)
    {
        var rng = new Random(is32 ? 7 : 3);
        for (int iter = 0; iter < 6000; iter++)
        {
            var (a, am) = RandomScalar(rng);
            var (b, bm) = rng.Next(2) == 0 ? (RegState.Known(Pick(rng)), null) : RandomScalar(rng);
            bm ??= [b.VarOff.Value];
            var op = s_cmp[rng.Next(s_cmp.Length)];
            int taken = Branches.IsTaken(a, b, op, is32);
            var ta = a; var tb = b; Branches.Refine(ref ta, ref tb, op, is32);
            var fa = a; var fb = b; Branches.Refine(ref fa, ref fb, Branches.Reverse(op), is32);
            foreach (var x in am)
                foreach (var y in bm)
                {
                    bool holds = Holds(x, y, op, is32);
                    if (taken == 1) Assert.That(holds, Is.True, $"{op} predicted taken for {x:x},{y:x}");
                    if (taken == 0) Assert.That(holds, Is.False, $"{op} predicted not taken for {x:x},{y:x}");
                    var (ra, rb) = holds ? (ta, tb) : (fa, fb);
                    Assert.That(Contains(ra, x) && Contains(rb, y), Is.True,
                        $"{op}{(is32 ? "32" : "")} {(holds ? "true" : "false")} side lost {x:x},{y:x}: {StateFormatter.Reg(ra, [])} / {StateFormatter.Reg(rb, [])}");
                }
        }
    }

    /// <summary>
    /// A 32-bit signed range crossing zero keeps only the side the unsigned range allows (the kernel's
    /// __reg32_deduce_bounds, like the 64-bit rule): s32 in [-1, 0] with u32 at least 44 is 0xffffffff.
    /// </summary>
    [Test]
    public void SignedRangeCrossingZeroNarrowsBy32BitUnsignedRange()
    {
        var r = RegState.Unknown();
        r.S32Min = -1; r.S32Max = 0;
        r.U32Min = 44;
        r.Sync();
        Assert.That(r.Equals32Const(out uint v) && v == 0xffffffff, Is.True, StateFormatter.Reg(r, []));
        var q = RegState.Unknown();
        q.S32Min = -100; q.S32Max = 100;
        q.U32Max = 200;
        q.Sync();
        Assert.That((q.S32Min, q.S32Max, q.U32Min, q.U32Max), Is.EqualTo((0, 100, 0u, 100u)), StateFormatter.Reg(q, []));
    }

    /// <summary>Tnum basics the kernel documents.</summary>
    [Test]
    public void TnumBasics()
    {
        Assert.That(Tnum.Range(0, 255), Is.EqualTo(new Tnum(0, 0xff)));
        Assert.That(Tnum.Range(4, 7), Is.EqualTo(new Tnum(4, 3)));
        Assert.That(Tnum.Range(0, ulong.MaxValue).IsUnknown, Is.True);
        Assert.That(Tnum.Const(5) + Tnum.Const(7), Is.EqualTo(Tnum.Const(12)));
        Assert.That((new Tnum(0, 1) + Tnum.Const(1)).Contains(Tnum.Const(2)), Is.True);
        Assert.That((new Tnum(0, 0xf) & Tnum.Const(3)), Is.EqualTo(new Tnum(0, 3)));
        Assert.That(Tnum.Const(6) * Tnum.Const(7), Is.EqualTo(Tnum.Const(42)));
        Assert.That(Tnum.Const(3).Union(Tnum.Const(9)), Is.EqualTo(new Tnum(1, 0xa)));
        Assert.That(new Tnum(0, 1) * Tnum.Const(5), Is.EqualTo(new Tnum(0, 5)));
        Assert.That(new Tnum(8, 0).IsAligned(8), Is.True);
        Assert.That(new Tnum(0, 4).IsAligned(8), Is.False);
        Assert.That(Tnum.Const(0xffffffff00000001).Subreg, Is.EqualTo(Tnum.Const(1)));
        Assert.That(new Tnum(0x80, 0).Arsh(4, 64), Is.EqualTo(Tnum.Const(8)));
        Assert.That(Tnum.Const(0x80000000).Arsh(31, 32), Is.EqualTo(Tnum.Const(0xffffffff)));
        Assert.That(new Tnum(0x1200, 0xff).Bswap16(), Is.EqualTo(new Tnum(0x12, 0xff00)));
        Assert.That(new Tnum(0xffff_0000_0000_0012, 0xf00).Bswap32(), Is.EqualTo(new Tnum(0x1200_0000, 0xf_0000)));
        Assert.That(new Tnum(0x1, 0x100).Bswap64(), Is.EqualTo(new Tnum(0x0100_0000_0000_0000, 0x0001_0000_0000_0000)));
    }
}
