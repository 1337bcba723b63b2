using System.Globalization;
using System.Text;
using BpfJit.Runtime;
using BpfJit.Verifier;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// SK_REUSEPORT programs aimed at the verifier's packet-pointer code (docs/reliability.md, "Domain fuzzing",
/// SK_REUSEPORT mode): <c>data</c>/<c>data_end</c>/<c>len</c> loaded from <c>struct sk_reuseport_md</c> at every
/// width (some invalid), packet pointers copied, spilled and filled, moved by constant and variable offsets
/// (masked, bounded, unbounded), compared with <c>data_end</c> in every jump form and direction (JMP32, ==/!=,
/// swapped operands, two packet pointers), accessed at offsets around the proven range, joined from paths
/// with different ranges (pruning), carried across helper calls (<c>bpf_skb_load_bytes</c>,
/// <c>bpf_sk_select_reuseport</c> on a REUSEPORT_SOCKARRAY), and returned.
/// <para>
/// Registers: r6 holds the context, r7 <c>data</c>, r8 <c>data_end</c>, r9 a scalar from the context; r0–r5
/// are temporaries inside one template. The stack's top 32 bytes are zeroed in the prologue. The generator
/// tracks the range it believes r7 has on the main path (<see cref="_range"/>) only to pick offsets near it:
/// whether a program is sound is the kernel's call.
/// </para>
/// </summary>
public sealed class ReuseportProgramGenerator
{
    /// <summary>The maps every program may use, by index: a REUSEPORT_SOCKARRAY and a SOCKMAP.</summary>
    public static readonly MapInfo[] Maps =
    [
        new("m0", MapType.ReuseportSockArray, 4, 8, 4),
        new("m1", MapType.SockMap, 4, 8, 4),
    ];

    /// <summary>The <c>## maps:</c> line of a corpus case for <see cref="Maps"/>.</summary>
    public const string CorpusMaps = "m0:REUSEPORT_SOCKARRAY:4:8:4, m1:SOCKMAP:4:8:4";

    static readonly string[] s_widths = ["b", "h", "w", "dw"];
    static readonly int[] s_bytes = [1, 2, 4, 8];
    static readonly string[] s_jumps = ["jgt", "jge", "jlt", "jle", "jeq", "jne", "jsgt", "jsge", "jslt", "jsle", "jset"];

    readonly Random _rng;
    readonly StringBuilder _sb = new();
    /// <summary>The range the generator believes r7 has here (what a check with a failing side that exits proved).</summary>
    int _range;
    int _label;

    ReuseportProgramGenerator(Random rng) => _rng = rng;

    /// <summary>One program as assembly in <see cref="BpfJit.Tests.Support.MapPrograms"/> syntax.</summary>
    public static string Generate(Random rng) => new ReuseportProgramGenerator(rng).Build();

    void Emit(string line) => _sb.Append(line).Append('\n');
    string Label() => $"l{_label++}";
    T Pick<T>(params T[] choices) => choices[_rng.Next(choices.Length)];
    bool Chance(int oneIn) => _rng.Next(oneIn) == 0;
    static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
    static string Off(int v) => v < 0 ? I(v) : "+" + I(v);

    string Build()
    {
        Emit("mov %r6, %r1");
        for (int s = 8; s <= 32; s += 8) Emit($"stdw [%r10-{s}], 0");
        LoadData(7, 0);
        LoadData(8, 8);
        CtxScalar(9);
        int steps = _rng.Next(1, 5);
        for (int i = 0; i < steps; i++) Segment();
        Return();
        // The shared failure exit, where something jumps to it (an unreferenced block is an unreachable insn to both verifiers).
        string body = _sb.ToString();
        return body.Contains(", out\n", StringComparison.Ordinal) || body.Contains("ja out\n", StringComparison.Ordinal) ? body + "out:\nmov %r0, 0\nexit\n" : body;
    }

    /// <summary>Loads data (0) or data_end (8) into <paramref name="r"/>: a u64 load mostly, else a width or offset the kernel refuses.</summary>
    void LoadData(int r, int field)
    {
        if (!Chance(40)) { Emit($"ldxdw %r{r}, [%r6+{field}]"); return; }
        Emit(_rng.Next(4) switch
        {
            0 => $"ldxw %r{r}, [%r6+{field + Pick(0, 4)}]",
            1 => $"ldxdw %r{r}, [%r6+{field + Pick(4, 8, 16)}]",
            2 => $"ldx{Pick("b", "h")} %r{r}, [%r6+{field}]",
            _ => $"mov %r1, %r6\nadd %r1, {Pick(4, 8)}\nldxdw %r{r}, [%r1+{field - 8}]",
        });
    }

    /// <summary>A scalar from the context: len, the hash, a protocol, bind_inany (at every legal width, and some illegal ones).</summary>
    void CtxScalar(int r)
    {
        int field = Pick(16, 16, 20, 24, 28, 32);
        int w = Chance(30) ? Pick(0, 1, 2, 3) : 2;
        int off = w == 2 ? field : field + Pick(0, 4 - s_bytes[w] > 0 ? 4 - s_bytes[w] : 0);
        Emit($"ldx{s_widths[w]} %r{r}, [%r6+{off}]");
    }

    /// <summary>A packet pointer register for a template: r7 itself, or a copy (a move, or a spill and fill).</summary>
    int PacketCopy(int into)
    {
        switch (_rng.Next(6))
        {
            case 0: return 7;
            case 1:
                {
                    int slot = 8 * _rng.Next(1, 5);
                    Emit($"stxdw [%r10-{slot}], %r7\nldxdw %r{into}, [%r10-{slot}]");
                    return into;
                }
            default: Emit($"mov %r{into}, %r7"); return into;
        }
    }

    /// <summary>A constant offset near the ranges programs check (headers: 8, 14, 20, 40).</summary>
    int Offset() => _rng.Next(6) switch
    {
        0 => Pick(0, 1, 2, 4),
        1 => Pick(7, 8, 9),
        2 => Pick(13, 14, 15, 16),
        3 => Pick(19, 20, 21, 24),
        4 => Pick(40, 64, 0xffff, 0x10000, -1, -8),
        _ => _rng.Next(0, 48),
    };

    /// <summary>A scalar for a variable offset in r3: from the context or a packet byte, masked, bounded or unbounded.</summary>
    void VariableOffset()
    {
        switch (_rng.Next(4))
        {
            case 0: Emit("mov %r3, %r9"); break;
            case 1: CtxScalar(3); break;
            case 2: Emit("call 7\nmov %r3, %r0"); break;
            default:
                if (_range >= 1) { Emit($"ldxb %r3, [%r7+{_rng.Next(0, _range)}]"); break; }
                Emit("mov %r3, %r9");
                break;
        }
        switch (_rng.Next(6))
        {
            case 0: break; // unbounded
            case 1 or 2: Emit($"and{(Chance(4) ? "32" : "")} %r3, {Pick(1, 7, 15, 0x3f, 0xff, 0xffff, 0x1ffff)}"); break;
            case 3 or 4:
                Emit($"{Pick("jgt", "jge", "jsgt", "jgt32")} %r3, {Pick(8, 16, 40, 0xff, 0xffff, 0x10000)}, out");
                if (Chance(2)) Emit($"{Pick("jslt", "jlt")} %r3, 0, out");
                break;
            default: Emit($"rsh %r3, {Pick(16, 24, 28, 31)}"); break;
        }
    }

    /// <summary>One template.</summary>
    void Segment()
    {
        switch (_rng.Next(20))
        {
            case 18 or 19: Recompare(); break;
            case 16 or 17: VariableJoin(); break;
            case 14: SpillThenCheck(); break;
            case 15: CheckThroughFilledEnd(); break;
            case 0 or 1 or 2: Check(constant: true); break;
            case 3 or 4: Check(constant: false); break;
            case 5 or 6: if (_range == 0 && !Chance(6)) Check(constant: true); else Access(PacketCopy(2), 0); break;
            case 7: Join(); break;
            case 8: SpillAcrossCall(); break;
            case 9: Helper(); break;
            case 10: PointerMath(); break;
            case 11: TwoPointers(); break;
            case 12: { int s = 8 * _rng.Next(1, 5); Emit($"stxdw [%r10-{s}], %r7"); if (Chance(3)) Emit($"stw [%r10-{s - Pick(0, 4)}], 0"); Emit($"ldx{(Chance(8) ? "w" : "dw")} %r7, [%r10-{s}]"); break; }
            default: if (_range == 0 && !Chance(6)) Check(constant: true); else Access(7, 0); break;
        }
    }

    /// <summary>
    /// A bounds check of a packet pointer (r7 plus a constant, or plus a variable r3) against data_end in a random
    /// jump form and operand order; the side the generator believes is in range gets an access near the checked
    /// end, the other side exits or falls through to the join (and sometimes the access is on the wrong side).
    /// </summary>
    void Check(bool constant)
    {
        int k = Offset(), baseReg = 7;
        if (!constant)
        {
            VariableOffset();
            baseReg = 4;
            Emit(Chance(5) ? "mov %r4, %r3\nadd %r4, %r7" : $"mov %r4, %r7\nadd{(Chance(30) ? "32" : "")} %r4, %r3");
            k = Pick(0, 1, 4, 8, 14);
        }
        int src = baseReg == 7 ? PacketCopy(5) : baseReg, cmp = 2;
        Emit($"mov %r2, %r{src}");
        if (k != 0 || Chance(2)) Emit($"add %r2, {I(k)}");
        string op = Chance(6) ? Pick(s_jumps) : Pick("jgt", "jge", "jlt", "jle");
        bool swap = Chance(3), w32 = Chance(25);
        string end = Chance(20) ? "%r9" : "%r8";
        string lhs = swap ? end : $"%r{cmp}", rhs = swap ? $"%r{cmp}" : end;
        // Taken side is in range for: pkt < end, pkt <= end (and swapped: end > pkt, end >= pkt).
        bool takenSafe = swap ? op is "jgt" or "jge" : op is "jlt" or "jle";
        string taken = Label(), join = Label();
        Emit($"{op}{(w32 ? "32" : "")} {lhs}, {rhs}, {taken}");
        bool exitUnsafe = !Chance(4), wrongSide = Chance(20);
        int checkedRange = Math.Max(k, 1);
        // Fall-through block, then the taken block.
        for (int side = 0; side < 2; side++)
        {
            bool isTaken = side == 1;
            if (isTaken) Emit($"{taken}:");
            bool safe = isTaken == takenSafe;
            if (safe != wrongSide)
            {
                if (baseReg == 7 && Chance(4)) Access(2, checkedRange, bias: k);
                else Access(baseReg, checkedRange);
            }
            else if (exitUnsafe) { Emit("ja out"); continue; }
            if (!isTaken) Emit($"ja {join}");
        }
        Emit($"{join}:");
        // After a variable check, the range belongs to r4's id: r7 (id 0) has none from it, only what constant checks proved.
        if (!constant && Chance(4)) Access(7, 0);
        // Only when the unsafe side exited is the range what the main path continues with (roughly).
        if (baseReg == 7 && exitUnsafe && !wrongSide && op is "jgt" or "jge" or "jlt" or "jle" && !w32 && end == "%r8")
            _range = Math.Clamp(k, _range, short.MaxValue);
    }

    /// <summary>
    /// A read (mostly) or write of the packet through <paramref name="r"/> at an offset around <paramref name="range"/> (else the
    /// main path's range), less <paramref name="bias"/> (the constant <paramref name="r"/> is ahead of the packet start by).
    /// </summary>
    void Access(int r, int range, int bias = 0)
    {
        if (range == 0) range = _range;
        int w = Pick(0, 0, 1, 2, 2, 3);
        int size = s_bytes[w];
        int off = _rng.Next(30) switch
        {
            0 or 1 or 2 or 3 or 4 or 5 => range - size, // the last in-range access
            6 => range - size + 1,                      // one past
            7 => range,                                 // at the checked end
            8 => Pick(-1, -size, -range),
            9 or 10 => 0,
            _ => Math.Max(0, _rng.Next(0, Math.Max(1, range)) - size + 1),
        };
        off = Math.Clamp(off - bias, short.MinValue, short.MaxValue);
        switch (_rng.Next(40))
        {
            case 0: Emit($"st{s_widths[w]} [%r{r}{Off(off)}], 1"); break;
            case 1: Emit($"mov %r1, 1\nlock add [%r{r}{Off(off)}], %r1"); break;
            default: Emit($"ldx{s_widths[w]} %r0, [%r{r}{Off(off)}]"); break;
        }
    }

    /// <summary>Two paths checking different ranges (each exiting when short), joined, then an access near the smaller: pruning must keep the smaller range.</summary>
    void Join()
    {
        int k1 = Offset(), k2 = Chance(2) ? Math.Max(0, k1 + Pick(-4, -1, 1, 6)) : Offset();
        string alt = Label(), join = Label();
        Emit($"{Pick("jgt", "jlt", "jeq", "jset")} %r9, {Pick(0, 1, 60, 100)}, {alt}");
        void Side(int k)
        {
            Emit($"mov %r2, %r7\nadd %r2, {I(k)}\n{Pick("jgt", "jgt", "jge")} %r2, %r8, out");
        }
        Side(k1);
        Emit($"ja {join}\n{alt}:");
        if (!Chance(5)) Side(k2);
        Emit($"{join}:");
        int saved = _range;
        _range = Math.Clamp(Math.Min(k1, k2), _range, short.MaxValue);
        Access(7, Chance(4) ? Math.Max(k1, k2) : 0);
        if (Chance(2)) _range = saved;
    }

    /// <summary>
    /// Two paths that each move r4 = r7 + a differently bounded variable and check r4 + k against data_end with
    /// their own k (some paths spill r4 and fill it), joined, then an access through r4 near either k: pruning at
    /// the join must compare both the variable offsets and the ranges.
    /// </summary>
    void VariableJoin()
    {
        string alt = Label(), join = Label();
        int k1 = Offset(), k2 = Chance(2) ? Math.Max(0, k1 + Pick(-6, -1, 1, 6)) : Offset();
        Emit($"{Pick("jgt", "jlt", "jset")} %r9, {Pick(1, 60, 100)}, {alt}");
        void Side(int k)
        {
            Emit($"mov %r3, %r9\n{Pick("and %r3, 7", "and %r3, 0xff", "and %r3, 0x3f", "rsh %r3, 28", "mov %r3, 0", "mov %r3, 4")}\nmov %r4, %r7\nadd %r4, %r3");
            if (Chance(4)) Emit("stxdw [%r10-8], %r4\nldxdw %r4, [%r10-8]");
            Emit($"mov %r2, %r4\nadd %r2, {I(k)}\n{Pick("jgt", "jgt", "jge")} %r2, %r8, out");
        }
        Side(k1);
        Emit($"ja {join}\n{alt}:");
        Side(k2);
        Emit($"{join}:");
        int w = Pick(0, 0, 1, 2, 3);
        int off = Math.Clamp(Pick(Math.Min(k1, k2), Math.Max(k1, k2), k1, k2) - s_bytes[w] + Pick(0, 0, 0, 1), short.MinValue, short.MaxValue);
        Emit($"ldx{s_widths[w]} %r0, [%r4{Off(off)}]");
    }

    /// <summary>
    /// A pointer compared with data_end, both sides joined (one carrying a range, the other the at/beyond-the-end
    /// mark), then compared again: the kernel decides the second branch from the mark (is_pkt_ptr_branch_taken)
    /// and prunes the joined states by comparing their ranges, marks included.
    /// </summary>
    void Recompare()
    {
        int k = Offset();
        string l1 = Label(), l2 = Label(), join = Label();
        string End(string pkt, out bool swap) { swap = Chance(3); return swap ? $"%r8, {pkt}" : $"{pkt}, %r8"; }
        Emit($"mov %r2, %r7\nadd %r2, {I(k)}\n{Pick("jgt", "jge", "jlt", "jle")} {End("%r2", out _)}, {l1}");
        if (Chance(3)) Emit("mov %r0, 0");
        Emit($"{l1}:\n{Pick("jgt", "jge", "jlt", "jle")} {End("%r2", out _)}, {l2}");
        int w = Pick(0, 0, 1, 2, 3);
        Emit($"ldx{s_widths[w]} %r0, [%r{Pick(2, 7)}{Off(Math.Clamp(Pick(-s_bytes[w], k - s_bytes[w], 0), short.MinValue, short.MaxValue))}]\nja {join}\n{l2}:");
        if (Chance(2)) Emit($"ldx{s_widths[w]} %r0, [%r{Pick(2, 7)}{Off(Math.Clamp(Pick(-s_bytes[w], k - s_bytes[w], 0), short.MinValue, short.MaxValue))}]");
        Emit($"{join}:");
    }

    /// <summary>r7 spilled before a check of it and filled after: the kernel widens the range of the spilled copy too.</summary>
    void SpillThenCheck()
    {
        int s = 8 * _rng.Next(1, 5), k = Offset();
        Emit($"stxdw [%r10-{s}], %r7\nmov %r2, %r7\nadd %r2, {I(k)}\n{Pick("jgt", "jgt", "jge")} %r2, %r8, out");
        if (Chance(5)) Emit($"stdw [%r10-{s}], 0");
        Emit($"ldxdw %r3, [%r10-{s}]");
        _range = Math.Clamp(k, _range, short.MaxValue);
        Access(3, Math.Max(k, 1));
    }

    /// <summary>data_end spilled and filled (or data, or a second load of data_end) before a check: the filled copy must still be pkt_end.</summary>
    void CheckThroughFilledEnd()
    {
        int s = 8 * _rng.Next(1, 5), k = Offset();
        Emit(_rng.Next(4) switch
        {
            0 => "ldxdw %r1, [%r6+8]",
            1 => $"stxdw [%r10-{s}], %r7\nldxdw %r1, [%r10-{s}]",
            _ => $"stxdw [%r10-{s}], %r8\nldxdw %r1, [%r10-{s}]",
        });
        Emit($"mov %r2, %r7\nadd %r2, {I(k)}\n{Pick("jgt", "jge", "jlt")} %r2, %r1, out");
        Access(7, Math.Max(k, 1));
    }

    /// <summary>A checked packet pointer spilled, a helper called, the pointer filled and used (ranges survive calls in r6–r9 and the stack, not in r1–r5).</summary>
    void SpillAcrossCall()
    {
        if (_range == 0 && !Chance(4)) Check(constant: true);
        int s = 8 * _rng.Next(1, 4);
        Emit($"mov %r5, %r7\nstxdw [%r10-{s}], %r5");
        if (Chance(3)) Emit("mov %r4, %r7");
        Helper();
        Emit(Chance(4) ? "ldxb %r0, [%r4+0]" : $"ldxdw %r3, [%r10-{s}]");
        Access(3, 0);
    }

    /// <summary>bpf_sk_select_reuseport on the REUSEPORT_SOCKARRAY (or SOCKMAP), or bpf_skb_load_bytes; some pass a packet pointer as the memory argument.</summary>
    void Helper()
    {
        if (Chance(2))
        {
            string key = Chance(8) ? "mov %r3, %r7" : $"stw [%r10-36], {Pick(0, 1, 3, 4)}\nmov %r3, %r10\nadd %r3, -36";
            Emit($"{key}\nmov %r1, %r6\nldmap %r2, {Pick(0, 0, 0, 1)}\nmov %r4, {Pick(0, 0, 1)}\ncall 82");
        }
        else
        {
            string to = Chance(8) ? "mov %r3, %r7" : "mov %r3, %r10\nadd %r3, -32";
            string len = Chance(3) ? "mov %r4, %r9\nand %r4, 7\nadd %r4, 1" : $"mov %r4, {Pick(1, 4, 8, 16, 32, 33, 0)}";
            Emit($"mov %r1, %r6\nmov %r2, {Pick(0, 0, 14, -1)}\n{to}\n{len}\ncall 26");
        }
        if (Chance(3)) Emit("mov %r9, %r0");
    }

    /// <summary>Arithmetic the kernel allows or forbids on packet pointers: pkt - pkt, pkt_end math, 32-bit math, masks, negation.</summary>
    void PointerMath()
    {
        Emit(_rng.Next(8) switch
        {
            // pkt -= var: a new id that keeps the range when the variable cannot be negative, and a pointer that may be before data.
            7 => $"mov %r3, %r9\nand %r3, {Pick(0, 7)}\nmov %r2, %r7\nsub %r2, %r3\nldxb %r0, [%r2+{Pick(0, 7, 8)}]",
            0 => "mov %r2, %r8\nsub %r2, %r7\nmov %r9, %r2",
            1 => $"mov %r2, %r8\nadd %r2, {Pick(-1, 1)}\nmov %r0, 0",
            2 => "mov %r2, %r7\nadd32 %r2, 1\nmov %r0, 0",
            3 => $"mov %r2, %r7\nand %r2, {Pick(-4, 0xff)}\nmov %r0, 0",
            4 => "mov %r2, %r7\nsub %r2, 4\nldxb %r0, [%r2+4]",
            5 => "mov %r2, %r7\nneg %r2\nmov %r0, 0",
            _ => "mov %r2, %r7\nadd %r2, %r8\nmov %r0, 0",
        });
    }

    /// <summary>Two packet pointers compared (no range comes from that), then an access through one.</summary>
    void TwoPointers()
    {
        if (_range == 0 && !Chance(4)) Check(constant: true);
        int k = Offset();
        Emit($"mov %r2, %r7\nadd %r2, {I(k)}\nmov %r3, %r7\nadd %r3, {I(Offset())}");
        Emit($"{Pick("jgt", "jge", "jlt", "jeq", "jne")} %r2, %r3, out");
        Access(Pick(2, 3, 7), 0);
    }

    /// <summary>The return value: a constant (1 = SK_PASS), a scalar from the context or the packet, a pointer.</summary>
    void Return()
    {
        Emit(_rng.Next(8) switch
        {
            0 => "mov %r0, %r9",
            1 => _range > 0 ? $"ldxb %r0, [%r7+{_rng.Next(0, _range)}]" : "mov %r0, 1",
            2 => Pick("mov %r0, %r7", "mov %r0, %r8", "mov %r0, 2", "mov %r0, -1"),
            _ => $"mov %r0, {_rng.Next(2)}",
        });
        Emit("exit");
    }
}
