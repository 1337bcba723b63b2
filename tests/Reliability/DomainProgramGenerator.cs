using System.Text;
using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// SK_LOOKUP programs aimed at the verifier's abstract domain rather than at snippets
/// (docs/reliability.md, "Domain fuzzing"). Scalars of every shape (unknown u32 and u64 words, sign-extended
/// bytes, constants, values narrowed by branches) pass through ALU operations on ranges, linked copies with
/// deltas, diamonds whose paths differ in a delta or only in precision, spills and fills of every width with
/// partial overwrites, loops, bpf_loop callbacks, static subprograms and spin-locked map values, and end in
/// a use that matters for safety: a variable stack or map-value offset, a helper's size argument, the
/// return value, or a branch into a NULL dereference. A verifier that loses or invents a bound then
/// disagrees with the kernel on the program's verdict.
/// <para>
/// Registers: r9 holds a NULL-checked 48-byte ARRAY value; r6–r8 hold the scalars the templates work on
/// (a spin-lock template may park a map-value pointer in one, which then leaves the scalar pool); r0–r5
/// are temporaries inside one template. The stack's top 64 bytes are zeroed in the prologue, so a
/// variable-offset read inside them is legal for both verifiers.
/// </para>
/// </summary>
public sealed partial class DomainProgramGenerator
{
    /// <summary>Map indexes used by the programs (<see cref="Maps"/>).</summary>
    internal const int ValueMap = 0, LockHash = 1, RingBuf = 2, LockArray = 3;

    /// <summary>The maps every program may use, by index: the BpfJit side; the kernel gets the same shapes (with BTF where a lock is present).</summary>
    public static readonly MapInfo[] Maps =
    [
        new("m0", MapType.Array, 4, 48, 4),
        new("m1", MapType.Hash, 4, 16, 4, SpinLockOffset: 0, HasBtf: true),
        new("m2", MapType.RingBuf, 0, 0, 4096),
        new("m3", MapType.Array, 4, 16, 2, SpinLockOffset: 8, HasBtf: true),
        new("m4", MapType.TaskStorage, 4, StorageValueSize, 0, Flags: 1, HasBtf: true),
        new("m5", MapType.CgrpStorage, 4, StorageValueSize, 0, Flags: 1, HasBtf: true),
        new("m6", MapType.CgroupArray, 4, 4, 4),
    ];

    /// <summary>Size of the map value r9 points to.</summary>
    const int ValueSize = 48;

    static readonly string[] s_widths = ["b", "h", "w", "dw"];
    static readonly int[] s_widthBytes = [1, 2, 4, 8];
    static readonly string[] s_jumps = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset"];
    static readonly string[] s_aluReg = ["add", "sub", "mul", "div", "mod", "sdiv", "smod", "or", "and", "xor", "lsh", "rsh", "arsh"];

    readonly Random _rng;
    readonly StringBuilder _main = new();
    readonly StringBuilder _tail = new();
    StringBuilder _sb;
    List<int> _scalars = [6, 7, 8];
    /// <summary>The label a failed bound jumps to in the function being written (its safe exit).</summary>
    string _out = "out";
    /// <summary>Call depth of the function being written: callees get no loops or locks, and only the first level calls on.</summary>
    int _depth;
    bool _inCallee => _depth > 0;
    /// <summary>Static functions written so far (a later call may reuse one: a second call site).</summary>
    readonly List<string> _functions = [];
    /// <summary>True while the scalars are first filled: a bound may not compare with a register not yet written.</summary>
    bool _prologue;
    int _label, _funcs;

    DomainProgramGenerator(Random rng) { _rng = rng; _sb = _main; }

    /// <summary>One program as assembly in <see cref="MapPrograms"/> syntax (<c>ldmap %rN, I</c>, <c>ldfunc</c>).</summary>
    public static string Generate(Random rng) => new DomainProgramGenerator(rng).Build();

    /// <summary>Assembles a generated program.</summary>
    public static Instruction[] Assemble(string source) => Assemble(source, out _);

    /// <summary>The immediate a <c>kcall</c> line is assembled with (plus its name's index in <see cref="KernelFunctionNames"/>) before it becomes a kfunc call.</summary>
    const int KcallMarker = 0x4b430000;

    /// <summary>Assembles a generated program (<c>kcall NAME</c> is a kfunc call whose immediate indexes <see cref="KernelFunctionNames"/>); <paramref name="lineSlots"/> gives each source line's instruction slot.</summary>
    public static Instruction[] Assemble(string source, out int[] lineSlots)
    {
        string text = System.Text.RegularExpressions.Regex.Replace(source, @"^(\s*)kcall (\w+)",
            m => $"{m.Groups[1].Value}call {KcallMarker + Array.IndexOf(KernelFunctionNames, m.Groups[2].Value)}", System.Text.RegularExpressions.RegexOptions.Multiline);
        var code = MapPrograms.Assemble(text, out lineSlots);
        for (int i = 0; i < code.Length; i++)
            if (code[i].IsCall && code[i].Src == 0 && code[i].Imm >= KcallMarker && code[i].Imm < KcallMarker + KernelFunctionNames.Length)
                code[i] = code[i] with { Src = (byte)CallKind.Kfunc, Imm = code[i].Imm - KcallMarker };
        return code;
    }

    string Build()
    {
        // The context kept for the kernel-object templates, a zeroed stack frame (so variable-offset reads are of
        // initialised bytes), then the ARRAY value in r9.
        Emit($"stxdw [%r10-{CtxSlot}], %r1");
        for (int s = 8; s <= 64; s += 8) Emit($"stdw [%r10-{s}], 0");
        Emit($"stw [%r10-68], {Pick(0, 0, 1, 3, 5)}");
        Emit("mov %r2, %r10\nadd %r2, -68\nldmap %r1, 0\ncall 1\njeq %r0, 0, out\nmov %r9, %r0");
        _prologue = true;
        foreach (int r in _scalars) Source(r);
        _prologue = false;
        int steps = _rng.Next(1, 5);
        for (int i = 0; i < steps; i++) Segment();
        if (_rng.Next(3) == 0 && _scalars.Count > 0)
        {
            int x = Scalar();
            if (_rng.Next(2) == 0) Bound(x, _out);
            Emit($"mov %r0, %r{x}");
            if (_rng.Next(3) == 0) Emit(_rng.Next(2) == 0 ? "and %r0, 1" : $"rsh %r0, {Pick(31, 32, 63)}");
            Emit("exit");
        }
        else Emit($"mov %r0, {_rng.Next(2)}\nexit");
        Emit("out:\nmov %r0, 0\nexit");
        _main.Append(_tail);
        return _main.ToString();
    }

    void Emit(string line) => _sb.Append(line).Append('\n');
    string Label() => $"l{_label++}";
    T Pick<T>(params T[] choices) => choices[_rng.Next(choices.Length)];
    bool Chance(int oneIn) => _rng.Next(oneIn) == 0;
    string W32() => Chance(3) ? "32" : "";

    /// <summary>A scalar register from the pool (refilling r6 if a template took them all).</summary>
    int Scalar()
    {
        if (_scalars.Count == 0) { _scalars.Add(6); Source(6); }
        return _scalars[_rng.Next(_scalars.Count)];
    }

    int OtherScalar(int x)
    {
        var others = _scalars.Where(r => r != x).ToList();
        return others.Count == 0 ? x : others[_rng.Next(others.Count)];
    }

    /// <summary>A small constant near the edges the uses care about (stack and value sizes, sign and width boundaries).</summary>
    int Constant() => _rng.Next(8) switch
    {
        0 => _rng.Next(-8, 0),
        1 => Pick(int.MaxValue, int.MinValue, -1, 0x7fff, 0xffff, 0xff, 0x80, 0x8000, 0x10000),
        2 => Pick(15, 16, 31, 32, 47, 48, 63, 64),
        _ => _rng.Next(0, 70),
    };

    /// <summary>Fills <paramref name="r"/> with a fresh scalar: unknown words of every width and signedness, a random u32, a constant.</summary>
    void Source(int r)
    {
        switch (_rng.Next(10))
        {
            case 0 or 1: Emit($"ldxw %r{r}, [%r9+{_rng.Next(0, 12) * 4}]"); break;
            case 2: Emit($"ldxdw %r{r}, [%r9+{_rng.Next(0, 6) * 8}]"); break;
            case 3: Emit($"ldx{Pick("b", "h")} %r{r}, [%r9+{_rng.Next(0, 24) * 2}]"); break;
            case 4: Emit($"ldxs{Pick("b", "h", "w")} %r{r}, [%r9+{_rng.Next(0, 12) * 4}]"); break;
            case 5: Emit($"call 7\nmov %r{r}, %r0"); break;
            case 6: Emit($"mov{W32()} %r{r}, {Constant()}"); break;
            default:
                Emit($"ldx{Pick("w", "dw", "b")} %r{r}, [%r9+{_rng.Next(0, 6) * 8}]");
                Bound(r, _out);
                break;
        }
    }

    /// <summary>A branch to <paramref name="target"/> that narrows <paramref name="x"/> on the fall-through path (or a mask).</summary>
    void Bound(int x, string target)
    {
        if (Chance(6)) { Emit($"and{W32()} %r{x}, {Pick(1, 3, 7, 15, 31, 63, 0xff, 0xfff0, -8)}"); return; }
        string op = Pick("jgt", "jgt", "jge", "jsgt", "jsge", "jlt", "jslt", "jle", "jsle", "jne", "jeq", "jset");
        string rhs = Chance(5) && _scalars.Count > 1 && !_prologue ? $"%r{OtherScalar(x)}" : Constant().ToString(System.Globalization.CultureInfo.InvariantCulture);
        Emit($"{op}{W32()} %r{x}, {rhs}, {target}");
        // A lower bound as well, sometimes: signed/unsigned crossings come from mixing the two.
        if (Chance(2)) Emit($"{Pick("jslt", "jlt", "jsle")}{W32()} %r{x}, {Pick(0, 0, 1, -1, -4)}, {target}");
    }

    /// <summary>An ALU operation on a range: every operation in 64- and 32-bit form, with constants and registers (some with unknown upper halves).</summary>
    void Alu(int x)
    {
        string w = W32();
        switch (_rng.Next(12))
        {
            case 0 or 1 or 2:
                {
                    string op = Pick(s_aluReg);
                    int k = op is "lsh" or "rsh" or "arsh" ? _rng.Next(0, w == "32" ? 32 : 64) : Constant();
                    if (op is "div" or "mod" or "sdiv" or "smod" && k == 0) k = Pick(3, -3, 7);
                    Emit($"{op}{w} %r{x}, {k}");
                    break;
                }
            case 3 or 4:
                {
                    // A register operand: another scalar, or r5 with a bounded low half and an unknown upper half.
                    string op = Pick(s_aluReg);
                    int y = 5;
                    if (Chance(2) && _scalars.Count > 1) y = OtherScalar(x);
                    else
                    {
                        Emit($"ldxdw %r5, [%r9+{_rng.Next(0, 6) * 8}]");
                        Emit(Chance(2) ? $"jgt32 %r5, {Pick(7, 31, 63, 64)}, {_out}" : $"and32 %r5, {Pick(7, 31, 63)}");
                        if (Chance(3)) Emit("mov32 %r5, %r5");
                    }
                    Emit($"{op}{w} %r{x}, %r{y}");
                    break;
                }
            case 5: Emit($"neg{w} %r{x}"); break;
            case 6: Emit(w == "32" ? $"movsx{Pick("8", "16")}32 %r{x}, %r{x}" : $"movsx{Pick("8", "16", "32")}64 %r{x}, %r{x}"); break;
            case 7: Emit($"{Pick("bswap", "be", "le")}{Pick("16", "32", "64")} %r{x}"); break;
            case 8: Emit($"mov32 %r{x}, %r{x}"); break;
            case 9: Emit($"mov{w} %r{x}, %r{OtherScalar(x)}"); break;
            case 10:
                // Signed/unsigned crossing: shift a u32 down into negatives, then bound it signed.
                Emit($"add{w} %r{x}, {Pick(-1, -16, -32, -0x8000, int.MinValue)}");
                Emit($"jslt{w} %r{x}, {Pick(0, -8, -16)}, {_out}");
                break;
            default:
                Emit($"{Pick("lsh", "rsh", "arsh")}{w} %r{x}, {_rng.Next(0, 8)}");
                break;
        }
    }

    /// <summary>One template; most end with a use of the value they shaped.</summary>
    void Segment()
    {
        int kind = _rng.Next(27);
        // Callees get the templates that stay inside one function (a first-level callee may call a leaf).
        if (_inCallee && kind is 14 or 15 or 18 or 22) kind = 0;
        if (_depth > 1 && kind is 16 or 17) kind = 0;
        switch (kind)
        {
            case 0 or 1 or 2: { int x = Scalar(); for (int i = _rng.Next(1, 4); i > 0; i--) Alu(x); if (Chance(2)) Bound(x, _out); Use(x); break; }
            case 3: Bound(Scalar(), _out); break;
            case 4: Source(Scalar()); break;
            case 5 or 6 or 7: LinkedDelta(); break;
            case 8 or 9 or 10: SpillFill(); break;
            case 11: PointerSpill(); break;
            case 12 or 13: PrecisionJoin(); break;
            case 14: Loop(); break;
            case 15: BpfLoop(); break;
            case 16 or 17: StaticCall(); break;
            case 18: SpinLock(); break;
            case 19: { int x = Scalar(); Alu(x); Use(x); break; }
            case 22: RingBufRecord(); break;
            case >= 23: KernelObject(); break;
            default: { int x = Scalar(); Bound(x, _out); Use(x); break; }
        }
    }
}
