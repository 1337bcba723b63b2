using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// The scalar ALU domain against the live kernel, instruction by instruction: random chains of ALU operations
/// (32- and 64-bit, shifts by constants and by registers whose upper half may be unknown, movsx, byte swaps,
/// div/mod, NEG) with comparisons between them, verified at log level 2 by BpfJit and by the kernel. After
/// every ALU instruction R0's tnum and four ranges must be the kernel's, so the domain is neither looser nor
/// tighter than Linux. Comparisons only steer the paths here: a program whose first difference follows a
/// comparison is left to the branch refinement's tests.
/// </summary>
[TestFixture]
public partial class AluDomainKernelDiffTests
{
    static readonly long[] s_consts =
    [
        0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 0xfff, 0xffff, 0x7fff, 0x8000, 0x7fffffff,
        -1, -2, -4, -8, -16, -128, -256, -0x8000, int.MinValue, 0x0f0f, 0xff00, 0x10000,
    ];

    static long Const(Random r) => r.Next(5) == 0 ? r.Next(-1000, 1000) : s_consts[r.Next(s_consts.Length)];

    /// <summary>R0 and R6 start unknown; R6 is then shaped into a small shift amount, sometimes with an unknown upper half.</summary>
    static string RandomProgram(Random r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("call 7").AppendLine("mov %r6, %r0").AppendLine("call 7");
        sb.AppendLine($"and %r6, {new[] { 3, 7, 15, 31, 63, 0xff }[r.Next(6)]}");
        if (r.Next(3) == 0) sb.AppendLine($"add %r6, {r.Next(0, 40)}");
        if (r.Next(4) == 0) sb.AppendLine("mov %r7, %r0").AppendLine("lsh %r7, 32").AppendLine("or %r6, %r7");
        int n = r.Next(2, 8);
        for (int i = 0; i < n; i++)
        {
            string w = r.Next(2) == 0 ? "32" : "";
            sb.AppendLine(r.Next(14) switch
            {
                0 or 1 => $"{new[] { "and", "or", "xor", "add", "sub", "mul" }[r.Next(6)]}{w} %r0, {Const(r)}",
                2 or 3 => $"{new[] { "lsh", "rsh", "arsh" }[r.Next(3)]}{w} %r0, {r.Next(w == "" ? 64 : 32)}",
                4 => $"{new[] { "lsh", "rsh", "arsh" }[r.Next(3)]}{w} %r0, %r6",
                5 => $"{new[] { "and", "or", "xor", "add", "sub", "mul" }[r.Next(6)]}{w} %r0, %r6",
                6 => $"neg{w} %r0",
                7 => $"{new[] { "movsx832", "movsx1632", "movsx864", "movsx1664", "movsx3264" }[r.Next(5)]} %r0, %r0",
                8 => "mov32 %r0, %r0",
                9 => $"{new[] { "be", "le", "bswap" }[r.Next(3)]}{new[] { 16, 32, 64 }[r.Next(3)]} %r0",
                10 => $"{new[] { "div", "mod" }[r.Next(2)]}{w} %r0, {r.Next(1, 9)}",
                _ => $"{new[] { "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset" }[r.Next(11)]}{w} %r0, {Const(r)}, out",
            });
        }
        sb.AppendLine("out:").AppendLine("mov %r0, 0").AppendLine("exit");
        return sb.ToString();
    }

    [GeneratedRegex(@"^(\d+): \(([0-9a-f]{2})\) ([^;]*?)\s*;\s*(.*)$")]
    private static partial Regex InsnLine();

    [GeneratedRegex(@"R0=(scalar\((?:[^()]|\([^()]*\))*\)|\S+)")]
    private static partial Regex R0State();

    /// <summary>R0 after each instruction on the first path that reached it, and whether the instruction is ALU.</summary>
    static Dictionary<int, (string Insn, string State, bool Alu)> States(string log)
    {
        var states = new Dictionary<int, (string, string, bool)>();
        foreach (var line in log.Split('\n'))
        {
            var m = InsnLine().Match(line.TrimEnd());
            if (!m.Success) continue;
            int idx = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            int cls = Convert.ToInt32(m.Groups[2].Value, 16) & 7;
            if (states.ContainsKey(idx)) continue;
            var r0 = R0State().Match(m.Groups[4].Value);
            if (r0.Success) states[idx] = (m.Groups[3].Value, r0.Groups[1].Value, cls is 4 or 7);
        }
        return states;
    }

    static ulong Number(string s) => s.StartsWith("0x", StringComparison.Ordinal)
        ? ulong.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
        : s.StartsWith('-') ? (ulong)long.Parse(s, CultureInfo.InvariantCulture) : ulong.Parse(s, CultureInfo.InvariantCulture);

    /// <summary>
    /// A scalar in one notation whatever the printer: the kernel writes large numbers in hex and joins equal
    /// fields (<c>smin=umin=5</c>), BpfJit writes decimals one field at a time; omitted fields are unbounded.
    /// </summary>
    internal static string Normalize(string state)
    {
        if (!state.StartsWith("scalar(", StringComparison.Ordinal))
            return Regex.IsMatch(state, "^-?(0x)?[0-9a-f]+$") ? $"const {Number(state):x}" : state;
        var v = new Dictionary<string, ulong>
        {
            ["smin"] = 1UL << 63, ["smax"] = long.MaxValue, ["umin"] = 0, ["umax"] = ulong.MaxValue,
            ["smin32"] = 0x80000000, ["smax32"] = int.MaxValue, ["umin32"] = 0, ["umax32"] = uint.MaxValue,
        };
        string varOff = "unknown";
        var m = Regex.Match(state, @"var_off=\(([^)]*)\)");
        if (m.Success) varOff = m.Groups[1].Value.Replace(" ", "", StringComparison.Ordinal);
        foreach (var part in Regex.Replace(state[7..^1], @",?var_off=\([^)]*\)", "").Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var keys = part.Split('=');
            if (keys[0] == "id") continue;
            ulong value = Number(keys[^1]);
            foreach (var key in keys[..^1]) v[key] = key.EndsWith("32", StringComparison.Ordinal) ? (uint)value : value;
        }
        return $"s=[{(long)v["smin"]},{(long)v["smax"]}] u=[{v["umin"]:x},{v["umax"]:x}] " +
               $"s32=[{(int)(uint)v["smin32"]},{(int)(uint)v["smax32"]}] u32=[{v["umin32"]:x},{v["umax32"]:x}] var_off={varOff}";
    }

    /// <summary>Every ALU result's state equals the kernel's, for a batch of random chains.</summary>
    [Test]
    public void AluStatesMatchTheKernel([Values(1, 2)] int seed)
    {
        KernelBpf.RequireAvailable();
        var rng = new Random(seed);
        var diffs = new StringBuilder();
        for (int iter = 0; iter < 250; iter++)
        {
            string src = RandomProgram(rng);
            var slots = CorpusCase.Parse("alu", "## name: alu\n" + src).First().Assemble();
            var ours = BpfJit.Verifier.Verifier.Verify(slots, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, LogLevel = 2 });
            var kernel = KernelBpf.Load(slots, [], 2);
            var theirs = States(kernel.Log);
            foreach (var (idx, (insn, state, alu)) in States(ours.Log).OrderBy(p => p.Key))
            {
                if (!theirs.TryGetValue(idx, out var k)) continue;
                string a = Normalize(state), b = Normalize(k.State);
                if (a == b) continue;
                // The first difference decides: one after a comparison is the branch refinement's, not the ALU's.
                if (alu) diffs.AppendLine($"{idx}: {insn}\n  BpfJit {a}\n  kernel {b}\n{src}");
                break;
            }
        }
        Assert.That(diffs.ToString(), Is.Empty);
    }
}
