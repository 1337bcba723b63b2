using System.Text;

namespace BpfJit.Tests.Reliability;

/// <summary>The templates: uses, linked deltas, spills and fills, joins, loops, calls and locks.</summary>
public sealed partial class DomainProgramGenerator
{
    /// <summary>
    /// Uses <paramref name="x"/> where a wrong bound is a safety bug: a variable offset into the zeroed stack
    /// or into the map value (read, write, atomic), a helper's size argument, or a branch into a NULL dereference.
    /// </summary>
    void Use(int x)
    {
        // Stack accesses through a variable offset must be aligned: mostly bytes, so the bound decides.
        int w = Pick(0, 0, 0, 1, 2, 3);
        switch (_rng.Next(12))
        {
            case 0 or 1 or 2:
                Emit($"mov %r2, %r10\nadd %r2, -{Pick(8, 16, 24, 32, 48, 64)}\nadd %r2, %r{x}\nldx{s_widths[w]} %r0, [%r2+{Pick(0, 0, 0, -1, 1, 4)}]");
                break;
            case 3:
                Emit($"mov %r2, %r10\nadd %r2, -{Pick(8, 16, 32, 64)}\nadd %r2, %r{x}\nst{s_widths[w]} [%r2+0], {_rng.Next(0, 3)}");
                break;
            case 4 or 5:
                Emit($"mov %r2, %r9\nadd %r2, %r{x}\nldx{s_widths[w]} %r0, [%r2+{Pick(0, 0, 8, 16, 32, 40, 44, 47)}]");
                break;
            case 6:
                Emit($"mov %r2, %r9\nadd %r2, %r{x}\nst{s_widths[w]} [%r2+{Pick(0, 8, 40, 44)}], 7");
                break;
            case 7:
                // The value as a helper's size argument (ARG_CONST_SIZE_OR_ZERO over 64 zeroed stack bytes).
                if (_inCallee) goto default;
                Emit($"mov %r3, %r{x}\nldmap %r1, {RingBuf}\nmov %r2, %r10\nadd %r2, -{Pick(16, 32, 64)}\nmov %r4, 0\ncall 130");
                break;
            case 8:
                // An atomic through a variable offset: on the stack (Linux refuses) or in the value.
                Emit(Chance(2)
                    ? $"mov %r2, %r10\nadd %r2, -{Pick(16, 64)}\nadd %r2, %r{x}\nmov %r1, 1\nlock {Pick("add", "xor", "or")} [%r2+0], %r1"
                    : $"mov %r2, %r9\nadd %r2, %r{x}\nmov %r1, 1\nlock add [%r2+{Pick(0, 8, 40)}], %r1");
                break;
            default:
                {
                    // A branch the verifier must prove dead, into a NULL dereference.
                    string bad = Label(), end = Label();
                    Emit($"{Pick("jgt", "jge", "jsgt", "jslt", "jlt", "jeq", "jne", "jset")}{W32()} %r{x}, {Constant()}, {bad}\nja {end}\n{bad}:\nmov %r1, 0\nldxb %r0, [%r1+0]\n{end}:");
                    break;
                }
        }
    }

    /// <summary>
    /// A copy with a constant delta on two paths (different deltas, or one path without a copy), a branch on
    /// the original after the join, then a use of the copy (or the reverse): the kernel keeps the delta with
    /// the link id and compares both when it prunes.
    /// </summary>
    void LinkedDelta()
    {
        int a = Scalar(), c = OtherScalar(a);
        bool temp = c == a;
        if (temp) c = 5;
        if (Chance(4) || temp) { /* unbounded original */ } else Emit($"jgt{W32()} %r{a}, {Pick(10, 20, 60, 100, 0xffff)}, {_out}");
        string alt = Label(), join = Label();
        Condition(alt, a);
        string mov = Chance(3) ? "mov32" : "mov", add = Chance(3) ? "add32" : "add";
        int k1 = _rng.Next(-8, 17), k2 = Chance(2) ? k1 + Pick(-4, -2, -1, 1, 2, 4, 8) : _rng.Next(-8, 17);
        if (Chance(5)) Emit($"stxdw [%r10-{8 * _rng.Next(1, 9)}], %r{a}");
        Emit($"{mov} %r{c}, %r{a}\n{add} %r{c}, {k1}\nja {join}\n{alt}:");
        if (Chance(2)) Emit($"jgt{W32()} %r{a}, {Pick(8, 18, 58, 98)}, {_out}");
        Emit(_rng.Next(6) switch
        {
            0 => $"mov %r{c}, {k2}",
            1 => $"{mov} %r{c}, %r{a}",
            2 => $"{mov} %r{c}, %r{a}\nsub %r{c}, {-k2}",
            _ => $"{mov} %r{c}, %r{a}\n{add} %r{c}, {k2}",
        });
        Emit($"{join}:");
        bool reverse = Chance(4);
        int narrowed = reverse ? c : a, used = reverse ? a : c;
        Emit($"{Pick("jgt", "jgt", "jge", "jsgt", "jlt", "jle")}{W32()} %r{narrowed}, {Pick(0, 1, 5, 10, 16, 40, 48, 56)}, {_out}");
        if (Chance(3)) Emit($"{Pick("jslt", "jlt")}{W32()} %r{narrowed}, {Pick(0, 1, 2)}, {_out}");
        if (temp || Chance(5) == false) Use(used);
    }

    /// <summary>A branch to <paramref name="target"/> on something the verifier cannot decide.</summary>
    void Condition(string target, int avoid)
    {
        int other = OtherScalar(avoid);
        if (other != avoid && Chance(2)) Emit($"{Pick("jeq", "jne", "jgt", "jset")}{W32()} %r{other}, {Pick(0, 1, 7)}, {target}");
        else Emit($"ldxw %r4, [%r9+{_rng.Next(0, 12) * 4}]\njeq %r4, 0, {target}");
    }

    /// <summary>A spill of a scalar at some width, maybe a partial overwrite, a fill at some width and signedness, then a branch on one copy and a use of the other.</summary>
    void SpillFill()
    {
        int x = Scalar(), y = OtherScalar(x);
        if (y == x) y = 5;
        int slot = 8 * _rng.Next(1, 9);
        if (Chance(2)) Bound(x, _out);
        int ws = _rng.Next(4), os = _rng.Next(0, 8 / s_widthBytes[ws]) * s_widthBytes[ws] * (Chance(2) ? 1 : 0);
        Emit(Chance(8) ? $"st{s_widths[ws]} [%r10-{slot - os}], {Constant()}" : $"stx{s_widths[ws]} [%r10-{slot - os}], %r{x}");
        if (Chance(3))
        {
            int wo = _rng.Next(3), oo = _rng.Next(0, 8 / s_widthBytes[wo]) * s_widthBytes[wo];
            Emit(Chance(2) ? $"st{s_widths[wo]} [%r10-{slot - oo}], {Pick(0, 1, -1, 0x7f)}" : $"stx{s_widths[wo]} [%r10-{slot - oo}], %r{OtherScalar(x)}");
        }
        int wf = _rng.Next(4), of = Chance(3) ? _rng.Next(0, 8 / s_widthBytes[wf]) * s_widthBytes[wf] : 0;
        bool sx = wf < 3 && Chance(2);
        Emit($"ldx{(sx ? "s" : "")}{s_widths[wf]} %r{y}, [%r10-{slot - of}]");
        switch (_rng.Next(4))
        {
            case 0: Bound(y, _out); Use(x); break;
            case 1: Bound(x, _out); Use(y); break;
            case 2: Emit($"{Pick("jeq", "jne", "jslt", "jgt")}{W32()} %r{y}, {Pick(0, -1, 1, 0xff)}, {_out}"); Use(x); break;
            default: Use(y); break;
        }
        if (y == 5) return;
        if (!_scalars.Contains(y)) _scalars.Add(y);
    }

    /// <summary>A pointer spilled, perhaps partly overwritten or partly filled, filled and dereferenced.</summary>
    void PointerSpill()
    {
        int slot = 8 * _rng.Next(1, 9);
        bool stackPtr = Chance(3);
        // Mostly a whole 8-byte spill; sometimes a narrow one (Linux refuses a partial pointer spill).
        string width = Chance(8) ? Pick("w", "h") : "dw";
        if (_inCallee && Chance(3))
        {
            // A callee storing its own stack address into the region it was handed (the caller's stack or the value).
            Emit($"mov %r1, %r10\nadd %r1, -{Pick(8, 32)}\nstx{width} [%r9+{Pick(0, 8, 16)}], %r1\nldxdw %r0, [%r9+{Pick(0, 8)}]");
            return;
        }
        if (stackPtr) Emit($"mov %r1, %r10\nadd %r1, -{Pick(16, 32, 64)}\nstx{width} [%r10-{slot}], %r1");
        else Emit($"stx{width} [%r10-{slot}], %r9");
        if (Chance(3))
        {
            int wo = _rng.Next(3), oo = _rng.Next(0, 8 / s_widthBytes[wo]) * s_widthBytes[wo];
            Emit(Chance(2) ? $"st{s_widths[wo]} [%r10-{slot - oo}], 0" : $"stx{s_widths[wo]} [%r10-{slot - oo}], %r{Scalar()}");
        }
        if (Chance(4))
        {
            int wf = _rng.Next(3);
            Emit($"ldx{(Chance(2) ? "s" : "")}{s_widths[wf]} %r1, [%r10-{slot}]\nmov %r0, %r1");
        }
        else Emit($"ldxdw %r1, [%r10-{slot}]\nldx{s_widths[_rng.Next(4)]} %r0, [%r1+{Pick(0, 8, 16, 40)}]");
        // Zero the slot again so later variable-offset reads see initialised bytes of one kind.
        if (!Chance(4)) Emit($"stdw [%r10-{slot}], 0");
    }

    /// <summary>A diamond whose paths leave the same register with different precision (constant vs range, masked vs bounded).</summary>
    void PrecisionJoin()
    {
        int x = Scalar();
        string alt = Label(), join = Label();
        Condition(alt, x);
        Variant(x);
        Emit($"ja {join}\n{alt}:");
        Variant(x);
        Emit($"{join}:");
        if (Chance(3)) Bound(x, _out);
        Use(x);
    }

    void Variant(int x)
    {
        switch (_rng.Next(7))
        {
            case 0: Emit($"mov{W32()} %r{x}, {Pick(0, 1, 4, 7, 8, 15, 16, 40)}"); break;
            case 1: Emit($"and{W32()} %r{x}, {Pick(1, 7, 15, 31, 63)}"); break;
            case 2: Emit($"jgt{W32()} %r{x}, {Pick(7, 15, 16, 40, 47)}, {_out}"); break;
            case 3: Alu(x); break;
            case 4: Emit($"mov %r{x}, %r{OtherScalar(x)}"); break;
            case 5: Emit($"rsh{W32()} %r{x}, {Pick(1, 28, 29, 59, 60)}"); break;
            default: break;
        }
    }

    /// <summary>
    /// A loop shaping a scalar (and writing the stack by its counter): bounded by a constant, by another
    /// scalar, or with a path that does not advance the counter (an infinite loop both verifiers must find by
    /// comparing loop-head states exactly).
    /// </summary>
    void Loop()
    {
        int x = Scalar();
        string top = Label();
        int n = _rng.Next(1, 12), step = Pick(1, 1, 2, 3);
        Emit($"mov %r4, 0\n{top}:");
        // A loop that can stall changes nothing else, so the stalled state repeats exactly and is found at once
        // (changing a scalar too would run both verifiers to their 1,000,000-instruction limit, seconds each).
        string skip = Label();
        bool stall = Chance(6);
        if (!stall && Chance(2)) Emit($"add %r{x}, {Pick(1, 2, 4, 8, -1)}"); else if (!stall) Alu(x);
        if (Chance(2)) Emit($"mov %r2, %r10\nadd %r2, -{Pick(16, 64)}\nadd %r2, %r4\nstb [%r2+0], 1");
        if (stall) Emit($"ldxw %r3, [%r9+{_rng.Next(0, 12) * 4}]\njeq %r3, 0, {skip}");
        Emit($"add %r4, {step}");
        if (stall) Emit($"{skip}:");
        int bound = OtherScalar(x);
        if (Chance(4) && bound != x) Emit($"mov %r3, %r{bound}\nand %r3, 15\njlt %r4, %r3, {top}");
        else Emit($"jlt %r4, {n}, {top}");
        if (Chance(3)) Emit($"mov %r{x}, %r4");
        if (Chance(4) == false) Use(x);
    }

    /// <summary>bpf_loop with a callback that shapes its index and uses it against the caller's stack it was handed.</summary>
    void BpfLoop()
    {
        string cb = $"cb{_funcs++}";
        if (Chance(3) && _scalars.Count > 0) { int n = Scalar(); Emit($"mov %r1, %r{n}\nand %r1, 15"); }
        else Emit($"mov %r1, {_rng.Next(1, 9)}");
        Emit($"ldfunc %r2, {cb}\nmov %r3, %r10\nadd %r3, -64\nmov %r4, 0\ncall 181");
        if (Chance(3)) { int x = Scalar(); Emit($"mov %r{x}, %r0"); if (Chance(2)) Use(x); }
        Callee(cb, callback: true);
    }

    /// <summary>A static subprogram given a scalar and a 48-byte region (the value or the caller's stack), whose result the caller uses.</summary>
    void StaticCall()
    {
        // A second call site of an existing function (pruning then compares frames with different call sites),
        // or a new function; inside a callee, a new leaf function (states of different depths at one instruction).
        bool reuse = _functions.Count > 0 && Chance(3);
        string f = reuse ? Pick([.. _functions]) : $"f{_funcs++}";
        int x = Scalar();
        if (Chance(2)) Bound(x, _out);
        Emit($"mov %r1, %r{x}");
        Emit(Chance(3) ? "mov %r2, %r10\nadd %r2, -64" : "mov %r2, %r9");
        Emit($"call local {f}");
        if (Chance(4) == false) { Emit($"mov %r{x}, %r0"); if (Chance(2)) Use(x); }
        if (!reuse)
        {
            Callee(f, callback: false);
            _functions.Add(f);   // after its body: a function never calls itself
        }
    }

    /// <summary>
    /// Writes a callee after the main program: it zeroes its own stack, keeps its region in r9 and its
    /// scalar argument in r6, runs one or two in-function templates and returns a scalar (a callback only 0 or 1).
    /// </summary>
    void Callee(string name, bool callback)
    {
        var (saveSb, saveScalars, saveOut, saveDepth) = (_sb, _scalars, _out, _depth);
        _sb = new StringBuilder();
        _scalars = [6, 7];
        _out = name + "_out";
        _depth++;
        Emit($"{name}:");
        for (int s = 8; s <= 64; s += 8) Emit($"stdw [%r10-{s}], 0");
        Emit("mov %r9, %r2\nmov %r6, %r1");
        Source(7);
        for (int i = _rng.Next(1, 3); i > 0; i--) Segment();
        int ret = Scalar();
        if (callback) Emit(Chance(3) ? $"mov %r0, %r{ret}" : $"mov %r0, {_rng.Next(2)}");
        else Emit($"mov %r0, %r{ret}");
        Emit("exit");
        // The safe exit only where something jumps to it: Linux refuses unreachable instructions.
        if (_sb.ToString().Contains(", " + _out + "\n", StringComparison.Ordinal)) Emit($"{_out}:\nmov %r0, 0\nexit");
        _tail.Append(_sb);
        (_sb, _scalars, _out, _depth) = (saveSb, saveScalars, saveOut, saveDepth);
    }

    /// <summary>
    /// A ring-buffer record (a reference) held across a diamond that shapes an offset into it, then submitted or
    /// discarded: pruning then compares states that hold references.
    /// </summary>
    void RingBufRecord()
    {
        if (_scalars.Count < 2) { PrecisionJoin(); return; }
        int p = _scalars[_rng.Next(_scalars.Count)];
        _scalars.Remove(p);
        string done = Label();
        Emit($"ldmap %r1, {RingBuf}\nmov %r2, {Pick(8, 16, 32)}\nmov %r3, 0\ncall 131\nmov %r{p}, %r0\njeq %r{p}, 0, {done}");
        int x = Scalar();
        string alt = Label(), join = Label();
        Condition(alt, x);
        Variant(x);
        Emit($"ja {join}\n{alt}:");
        Variant(x);
        Emit($"{join}:");
        if (Chance(2)) Emit($"jgt %r{x}, {Pick(7, 15, 16, 31)}, {(Chance(6) ? _out : done + "_rel")}");
        Emit($"mov %r2, %r{p}\nadd %r2, %r{x}\nst{s_widths[Pick(0, 0, 1, 2)]} [%r2+0], 1");
        Emit($"{done}_rel:\nmov %r1, %r{p}\nmov %r2, 0\ncall {Pick(132, 133)}\n{done}:");
        Source(p);
        _scalars.Add(p);
    }

    /// <summary>
    /// A map value with a bpf_spin_lock: locked, its data touched (or the lock word itself), perhaps a call,
    /// an exit or an unlock of another lookup's value inside the region.
    /// </summary>
    void SpinLock()
    {
        if (_scalars.Count < 2) { LinkedDelta(); return; }
        int p = _scalars[_rng.Next(_scalars.Count)];
        _scalars.Remove(p);
        int map = Pick(LockHash, LockArray);
        int lockOff = map == LockHash ? 0 : 8;
        Emit($"mov %r2, %r10\nadd %r2, -68\nldmap %r1, {map}\ncall 1\njeq %r0, 0, {_out}\nmov %r{p}, %r0");
        int q = p;
        if (Chance(4) && _scalars.Count >= 2)
        {
            q = _scalars[_rng.Next(_scalars.Count)];
            _scalars.Remove(q);
            Emit($"mov %r2, %r10\nadd %r2, -68\nldmap %r1, {Pick(LockHash, LockArray, map)}\ncall 1\njeq %r0, 0, {_out}\nmov %r{q}, %r0");
        }
        // bpf_spin_lock takes the lock's own address: value + its offset (once in a while, the wrong one).
        string lockArg(int r) => $"mov %r1, %r{r}" + (Chance(15) ? $"\nadd %r1, {Pick(4, 8)}" : lockOff == 0 ? "" : $"\nadd %r1, {lockOff}");
        if (q != p && Chance(3))
        {
            // Which value is locked depends on the path; the unlock below names one of them.
            string alt = Label(), join = Label();
            Condition(alt, p);
            Emit($"{lockArg(p)}\ncall 93\nja {join}\n{alt}:\n{lockArg(q)}\ncall 93\n{join}:");
        }
        else Emit($"{lockArg(p)}\ncall 93");
        int dataOff = lockOff == 0 ? Pick(4, 8, 12) : Pick(0, 4, 12);
        for (int i = _rng.Next(1, 3); i > 0; i--)
        {
            int off = Chance(10) ? lockOff : dataOff;
            Emit(Chance(2) ? $"ldxw %r1, [%r{p}+{off}]" : $"ldxw %r1, [%r{p}+{dataOff}]\nadd %r1, 1\nstxw [%r{p}+{off}], %r1");
        }
        if (Chance(12)) Emit("call 7");
        if (Chance(10) && _scalars.Count > 0) Emit($"jeq %r{_scalars[0]}, 0, {_out}");
        if (Chance(5) && _scalars.Count > 0)
        {
            string alt = Label(), join = Label();
            Emit($"jeq %r{_scalars[0]}, 0, {alt}\n{lockArg(p)}\ncall 94\nja {join}\n{alt}:\n{lockArg(Pick(p, q))}\ncall 94\n{join}:");
        }
        else Emit($"{lockArg(Chance(4) ? q : p)}\ncall 94");
        // The pointers go back to being scalars, so the pool does not shrink.
        foreach (int r in new[] { p, q }.Distinct()) { Source(r); _scalars.Add(r); }
    }
}
