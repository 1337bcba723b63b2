using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// Branch refinement against the live kernel: R0 is shaped by a few random ALU operations, then one conditional
/// jump (every opcode, 32- and 64-bit, against a constant or against R6, a small unknown) is verified at log level
/// 2 by BpfJit and by the kernel. BpfJit must explore every side the kernel explores (is_branch_taken) and leave
/// R0 and R6 on each side no tighter than the kernel's (regs_refine_cond_op, the reg_bounds_sync after it, and
/// what a contradiction leaves): a tighter state could accept what Linux refuses. A looser state only refuses
/// more; those differences are printed, not failed (Linux 6.18's <c>tnum_step</c> turns a range meeting its
/// tnum in one value into that constant, which BpfJit's bounds sync does not do yet).
/// </summary>
[TestFixture]
public partial class BranchDomainKernelDiffTests
{
    static readonly long[] s_consts =
    [
        0, 1, 2, 3, 4, 7, 8, 15, 16, 20, 31, 32, 63, 64, 127, 128, 255, 256, 0xffff, 0x7fffffff, -1, -2, -4, -8, -80,
        -128, int.MinValue, 0x0f0f, 0xff00,
    ];

    static readonly string[] s_jumps = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset"];

    /// <summary>The jump under test is instruction <see cref="JumpIndex"/> of every program.</summary>
    const int JumpIndex = 9;

    static long Const(Random r) => r.Next(4) == 0 ? r.Next(-300, 300) : s_consts[r.Next(s_consts.Length)];

    static string RandomProgram(Random r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("call 7").AppendLine("mov %r6, %r0").AppendLine("call 7");
        sb.AppendLine($"and %r6, {new[] { 3, 7, 15, 31, 63, 0xff }[r.Next(6)]}");
        sb.AppendLine($"add %r6, {r.Next(0, 40)}");
        // Four shaping instructions keep the jump at index 9.
        for (int i = 0; i < 4; i++)
        {
            string w = r.Next(3) == 0 ? "32" : "";
            sb.AppendLine(r.Next(8) switch
            {
                0 or 1 => $"and{w} %r0, {Const(r)}",
                2 => $"or{w} %r0, {Const(r)}",
                3 => $"add{w} %r0, {Const(r)}",
                4 => $"{new[] { "lsh", "rsh", "arsh" }[r.Next(3)]}{w} %r0, {r.Next(1, w == "" ? 64 : 32)}",
                5 => $"{new[] { "movsx832", "movsx1632", "movsx3264", "mov32" }[r.Next(4)]} %r0, %r0",
                6 => "neg %r0",
                _ => $"sub{w} %r0, {Const(r)}",
            });
        }
        string jw = r.Next(2) == 0 ? "32" : "";
        string operand = r.Next(3) == 0 ? "%r6" : Const(r).ToString(CultureInfo.InvariantCulture);
        sb.AppendLine($"{s_jumps[r.Next(s_jumps.Length)]}{jw} %r0, {operand}, out");
        sb.AppendLine("mov %r0, 0").AppendLine("exit").AppendLine("out:").AppendLine("mov %r0, 0").AppendLine("exit");
        return sb.ToString();
    }

    [GeneratedRegex(@"^(\d+): \([0-9a-f]{2}\) [^;]*?(?:;\s*(.*))?$")]
    private static partial Regex InsnLine();

    [GeneratedRegex(@"^from (\d+) to (\d+): (.*)$")]
    private static partial Regex FromLine();

    static string? Reg(string states, int r)
    {
        var m = Regex.Match(" " + states, $@" R{r}=(scalar\((?:[^()]|\([^()]*\))*\)|\S+)");
        return m.Success ? AluDomainKernelDiffTests.Normalize(m.Groups[1].Value) : null;
    }

    /// <summary>
    /// R0 and R6 on the fall-through side (after the jump, or the state before it when the printer left them out)
    /// and on the taken side (the "from 9 to N" line), null for a side that was not explored.
    /// </summary>
    static (string? Fall, string? Taken) Sides(string log)
    {
        string?[] last = new string?[7];
        string? fall = null, taken = null;
        bool fallExplored = false;
        foreach (var raw in log.Split('\n'))
        {
            string line = raw.TrimEnd();
            var f = FromLine().Match(line);
            if (f.Success)
            {
                if (f.Groups[1].Value == $"{JumpIndex}") taken = $"R0 {Reg(f.Groups[3].Value, 0)} R6 {Reg(f.Groups[3].Value, 6)}";
                continue;
            }
            var m = InsnLine().Match(line);
            if (!m.Success) continue;
            int idx = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            string states = m.Groups[2].Value;
            if (idx == JumpIndex + 1) fallExplored = true;
            if (idx > JumpIndex) continue;
            foreach (int r in new[] { 0, 6 })
                if (Reg(states, r) is { } s) last[r] = s;
            if (idx == JumpIndex) fall = $"R0 {last[0]} R6 {last[6]}";
        }
        return (fallExplored ? fall : null, taken);
    }

    /// <summary>Both sides of every random jump are explored as the kernel explores them, with the kernel's states.</summary>
    [Test]
    public void BranchStatesMatchTheKernel([Values(1, 2)] int seed)
    {
        KernelBpf.RequireAvailable();
        var rng = new Random(seed);
        var diffs = new StringBuilder();
        for (int iter = 0; iter < 300; iter++)
        {
            string src = RandomProgram(rng);
            var slots = CorpusCase.Parse("branch", "## name: branch\n" + src).First().Assemble();
            var ours = BpfJit.Verifier.Verifier.Verify(slots, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, LogLevel = 2 });
            var kernel = KernelBpf.Load(slots, [], 2);
            var (of, ot) = Sides(ours.Log);
            var (kf, kt) = Sides(kernel.Log);
            foreach (var (side, o, k) in new[] { ("fall-through", of, kf), ("taken", ot, kt) })
            {
                if (o == k) continue;
                string text = $"{side}\n  BpfJit {o ?? "not explored"}\n  kernel {k ?? "not explored"}\n{src}";
                if (k != null && (o == null || !Contains(o, k))) diffs.AppendLine(text);
                else TestContext.Out.WriteLine("looser than the kernel: " + text);
            }
        }
        Assert.That(diffs.ToString(), Is.Empty);
    }

    /// <summary>The four ranges and the tnum of a normalised scalar ("const N" for a known value).</summary>
    static (long[] S, ulong[] U, ulong Value, ulong Mask) Parse(string state)
    {
        if (state.StartsWith("const ", StringComparison.Ordinal))
        {
            ulong v = ulong.Parse(state[6..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return ([(long)v, (long)v, (int)(uint)v, (int)(uint)v], [v, v, (uint)v, (uint)v], v, 0);
        }
        var m = Regex.Match(state, @"^s=\[(-?\d+),(-?\d+)\] u=\[(\w+),(\w+)\] s32=\[(-?\d+),(-?\d+)\] u32=\[(\w+),(\w+)\] var_off=(.*)$");
        Assert.That(m.Success, Is.True, state);
        long L(int g) => long.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
        ulong H(int g) => ulong.Parse(m.Groups[g].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        ulong value = 0, mask = ulong.MaxValue;
        var t = Regex.Match(m.Groups[9].Value, @"^0x(\w+);0x(\w+)$");
        if (t.Success)
        {
            value = ulong.Parse(t.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            mask = ulong.Parse(t.Groups[2].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        return ([L(1), L(2), L(5), L(6)], [H(3), H(4), H(7), H(8)], value, mask);
    }

    /// <summary>True when every register state in <paramref name="kernel"/> lies within BpfJit's (same register order).</summary>
    static bool Contains(string ours, string kernel)
    {
        var o = Regex.Split(ours, @" ?R\d+ ").Where(x => x.Length > 0).ToArray();
        var k = Regex.Split(kernel, @" ?R\d+ ").Where(x => x.Length > 0).ToArray();
        if (o.Length != k.Length) return false;
        for (int i = 0; i < o.Length; i++)
        {
            if (o[i] == k[i]) continue;
            if (!(o[i].StartsWith("s=", StringComparison.Ordinal) || o[i].StartsWith("const", StringComparison.Ordinal))) return false;
            var a = Parse(o[i]);
            var b = Parse(k[i]);
            for (int j = 0; j < 4; j += 2)
            {
                if (b.S[j] < a.S[j] || b.S[j + 1] > a.S[j + 1]) return false;
                if (b.U[j] < a.U[j] || b.U[j + 1] > a.U[j + 1]) return false;
            }
            if ((b.Mask & ~a.Mask) != 0 || (b.Value & ~a.Mask) != a.Value) return false;
        }
        return true;
    }
}
