using System.Text;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// bpf_strncmp and bpf_snprintf on both engines and in the verifier (ARG_PTR_TO_CONST_STR, check_bpf_snprintf_call),
/// each case with its expected result as Linux 6.18 gives it, and checked against the live kernel where it is at hand.
/// Map 0 is an ARRAY whose value holds the program's input and results; map 1 a frozen BPF_F_RDONLY_PROG ARRAY (as
/// libbpf's <c>.rodata</c>) holding the constant strings.
/// </summary>
[TestFixture]
public class StrncmpSnprintfTests
{
    /// <summary>Map 0's value: [0, 32) s1 or the output buffer, [32, 40) the result, [40, 152) snprintf's data.</summary>
    const int ValueSize = 152;
    const int RodataSize = 64;

    // The constant strings, at fixed offsets of the read-only value; the last 3 bytes have no NUL after them.
    static readonly (string Text, int Offset)[] s_strings =
    [
        ("abc", 0), ("abd", 4), ("ab", 8), ("%d:%x:%llu", 12), ("%%", 24), ("%q", 28), ("%d %d", 32), ("abc %c", 40),
    ];
    const int Unterminated = RodataSize - 3;

    static byte[] Rodata()
    {
        var value = new byte[RodataSize];
        foreach (var (text, offset) in s_strings) Encoding.Latin1.GetBytes(text).CopyTo(value, offset);
        "xyz"u8.CopyTo(value.AsSpan(Unterminated));
        return value;
    }

    static int At(string text) => Array.Find(s_strings, s => s.Text == text).Offset;

    static string Prologue => """
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        """;

    static string StrncmpProgram(int size, int s2) => $"""
        {Prologue}
        mov %r1, %r6
        mov %r2, {size}
        ldmapvalue %r3, 1, {s2}
        call {KernelHelpers.StrncmpId}
        stxdw [%r6+32], %r0
        out:
        mov %r0, 0
        exit
        """;

    static string SnprintfProgram(int strSize, int fmt, int dataLen, bool nullData = false) => $"""
        {Prologue}
        mov %r1, %r6
        mov %r2, {strSize}
        ldmapvalue %r3, 1, {fmt}
        {(nullData ? "mov %r4, 0" : "mov %r4, %r6\n        add %r4, 40")}
        mov %r5, {dataLen}
        call {KernelHelpers.SnprintfId}
        stxdw [%r6+32], %r0
        out:
        mov %r0, 0
        exit
        """;

    /// <summary>One strncmp: s1's bytes (Latin-1, NUL-padded), the size, the constant string, and the result.</summary>
    public sealed record Compare(string S1, int Size, string S2, long Expected)
    {
        /// <inheritdoc />
        public override string ToString() => $"strncmp(\"{S1}\", {Size}, \"{S2}\")";
    }

    /// <summary>The kernel's strncmp: -1, 0 or 1, unsigned bytes, up to the size or the first NUL.</summary>
    public static readonly Compare[] Compares =
    [
        new("abc", 3, "abc", 0), new("abc", 3, "abd", -1), new("abd", 3, "abc", 1), new("abc", 2, "abd", 0),
        new("ab", 16, "abc", -1), new("abcd", 4, "abc", 1), new("\u00ff", 1, "abc", 1), new("abc", 8, "abc", 0),
        new("ab", 8, "ab", 0),
    ];

    /// <summary>One snprintf: output size, format, the u64 arguments, data_len, and the expected result and output.</summary>
    public sealed record Print(int StrSize, string Fmt, ulong[] Data, int DataLen, long Expected, string Output, bool NullData = false)
    {
        /// <inheritdoc />
        public override string ToString() => $"snprintf(size {StrSize}, \"{Fmt}\", data_len {DataLen}{(NullData ? ", NULL" : "")})";
    }

    /// <summary>What bpf_snprintf returns (the whole length + 1, or -EINVAL) and leaves in the buffer.</summary>
    public static readonly Print[] Prints =
    [
        new(32, "%d:%x:%llu", [unchecked((ulong)-5L), 255, 1UL << 40], 24, 20, "-5:ff:1099511627776"),
        new(16, "%d:%x:%llu", [unchecked((ulong)-5L), 255, 1UL << 40], 24, 20, "-5:ff:109951162"),
        new(0, "%d:%x:%llu", [1, 2, 3], 24, 6, ""),
        new(32, "%%", [], 0, 2, "%"),
        new(32, "abc", [], 0, 4, "abc", NullData: true),
        new(32, "abc %c", [0x41], 8, 6, "abc A"),
        // More arguments than the format uses is fine; more than MAX_BPRINTF_VARARGS (12) is -EINVAL at run time.
        new(32, "abc", [], 96, 4, "abc"),
        new(32, "abc", [], 104, -22, ""),
    ];

    static (BpfMap Value, BpfMap Rodata) Maps(byte[] initial)
    {
        var value = MapFactory.Create(MapType.Array, 4, ValueSize, 1, 0, "v");
        Assert.That(value.Update(U32(0), initial), Is.EqualTo(0));
        var rodata = MapFactory.Create(MapType.Array, 4, RodataSize, 1, MapInfo.FlagReadOnlyProg, "ro");
        Assert.That(rodata.Update(U32(0), Rodata()), Is.EqualTo(0));
        Assert.That(rodata.Freeze(), Is.EqualTo(0));
        return (value, rodata);
    }

    static byte[] Initial(string s1 = "", ulong[]? data = null)
    {
        var value = new byte[ValueSize];
        Array.Fill(value, (byte)0x5a, 0, 32);
        Encoding.Latin1.GetBytes(s1).CopyTo(value, 0);
        if (s1.Length > 0) Array.Clear(value, s1.Length, 32 - s1.Length);
        for (int i = 0; data != null && i < data.Length; i++) BitConverter.GetBytes(data[i]).CopyTo(value, 40 + 8 * i);
        return value;
    }

    static byte[] EngineRun(string engine, string source, byte[] initial)
    {
        var (value, rodata) = Maps(initial);
        using (value)
        using (rodata)
        {
            var code = Assemble(source);
            var verdict = BpfJit.Verifier.Verifier.Verify(code, Options(Frozen: true));
            Assert.That(verdict.Accepted, Is.True, verdict.Log);
            Run(engine, source, 0, value, rodata);
            var after = new byte[ValueSize];
            Assert.That(value.Lookup(U32(0), after), Is.EqualTo(0));
            return after;
        }
    }

    static VerifierOptions Options(bool Frozen) => new()
    {
        Helpers = KernelHelpers.Table(),
        Maps =
        [
            new MapInfo("v", MapType.Array, 4, ValueSize, 1),
            new MapInfo("ro", MapType.Array, 4, RodataSize, 1, MapInfo.FlagReadOnlyProg, IsReadOnly: Frozen, FrozenValue: Frozen ? Rodata() : null),
        ],
    };

    static string Output(byte[] value)
    {
        int nul = Array.IndexOf(value, (byte)0, 0, 32);
        return Encoding.Latin1.GetString(value, 0, nul < 0 ? 32 : nul);
    }

    [TestCaseSource(nameof(Compares))]
    public void StrncmpComparesAsTheKernel(Compare c)
    {
        foreach (var engine in Engines.Names)
        {
            var value = EngineRun(engine, StrncmpProgram(c.Size, At(c.S2)), Initial(c.S1));
            Assert.That(BitConverter.ToInt64(value, 32), Is.EqualTo(c.Expected), engine);
        }
    }

    [TestCaseSource(nameof(Prints))]
    public void SnprintfFormatsAsTheKernel(Print p)
    {
        foreach (var engine in Engines.Names)
        {
            var value = EngineRun(engine, SnprintfProgram(p.StrSize, At(p.Fmt), p.DataLen, p.NullData), Initial(data: p.Data));
            Assert.That(BitConverter.ToInt64(value, 32), Is.EqualTo(p.Expected), engine);
            if (p.StrSize > 0 && p.Expected > 0) Assert.That(Output(value), Is.EqualTo(p.Output), engine);
            else Assert.That(value[0], Is.EqualTo(0x5a), $"{engine}: the buffer is not touched");
        }
    }

    /// <summary>Programs the verifier refuses, with the kernel's message (the last line of its log).</summary>
    public static readonly (string Name, string Source, bool Frozen, string Message)[] Refusals =
    [
        ("not read-only", StrncmpProgram(3, 0), false, "R3 does not point to a readonly map'"),
        ("no NUL", StrncmpProgram(3, Unterminated), true, "string is not zero-terminated"),
        ("bad conversion", SnprintfProgram(32, At("%q"), 8), true, "Invalid format string"),
        ("too few arguments", SnprintfProgram(32, At("%d %d"), 8), true, "Invalid format string"),
        ("stack string", StrncmpProgram(3, 0).Replace("ldmapvalue %r3, 1, 0", "mov %r3, %r10\n        add %r3, -8", StringComparison.Ordinal),
            true, "R3 type=fp expected=map_value"),
    ];

    static IEnumerable<TestCaseData> RefusalCases() => Refusals.Select(r => new TestCaseData(r.Name).SetName($"VerifierRefuses({r.Name})"));

    [TestCaseSource(nameof(RefusalCases))]
    public void VerifierRefuses(string name)
    {
        var r = Array.Find(Refusals, x => x.Name == name);
        var verdict = BpfJit.Verifier.Verifier.Verify(Assemble(r.Source), Options(r.Frozen));
        Assert.That(verdict.Accepted, Is.False);
        Assert.That(verdict.Error, Does.Contain(r.Message));
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelAgrees()
    {
        KernelBpf.RequireAvailable();
        var differences = new List<string>();
        foreach (var c in Compares)
        {
            var value = KernelRun(StrncmpProgram(c.Size, At(c.S2)), Initial(c.S1), frozen: true, out _);
            if (value != null && BitConverter.ToInt64(value, 32) != c.Expected) differences.Add($"{c}: kernel {BitConverter.ToInt64(value, 32)}, expected {c.Expected}");
            if (value == null) differences.Add($"{c}: kernel refused");
        }
        foreach (var p in Prints)
        {
            var value = KernelRun(SnprintfProgram(p.StrSize, At(p.Fmt), p.DataLen, p.NullData), Initial(data: p.Data), frozen: true, out _);
            if (value == null) { differences.Add($"{p}: kernel refused"); continue; }
            long ret = BitConverter.ToInt64(value, 32);
            string output = p.StrSize > 0 && p.Expected > 0 ? Output(value) : "";
            if (ret != p.Expected || output != p.Output && p.StrSize > 0 && p.Expected > 0)
                differences.Add($"{p}: kernel {ret} \"{output}\", expected {p.Expected} \"{p.Output}\"");
        }
        foreach (var r in Refusals)
        {
            var value = KernelRun(r.Source, Initial(), r.Frozen, out string log);
            if (value != null || !log.Contains(r.Message, StringComparison.Ordinal)) differences.Add($"{r.Name}: kernel log {log}");
        }
        if (differences.Count > 0) KernelOracle.Differs("6.18.44-fc-v1300", string.Join("\n", differences));
    }

    /// <summary>Loads and runs in the kernel; the value after the run, or null (with the log) when the kernel refuses.</summary>
    static byte[]? KernelRun(string source, byte[] initial, bool frozen, out string log)
    {
        int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, ValueSize, 1, 0);
        int ro = KernelBpf.CreateMap((uint)MapType.Array, 4, RodataSize, 1, MapInfo.FlagReadOnlyProg);
        Assert.That(fd >= 0 && ro >= 0, $"BPF_MAP_CREATE: {fd} {ro}");
        try
        {
            Assert.That(KernelBpf.Update(fd, U32(0), initial), Is.EqualTo(0));
            Assert.That(KernelBpf.Update(ro, U32(0), Rodata()), Is.EqualTo(0));
            if (frozen) Assert.That(KernelBpf.Freeze(ro), Is.EqualTo(0));
            var code = Assemble(source);
            var load = KernelBpf.Load(code, [fd, ro]);
            log = load.Log;
            if (!load.Accepted) return null;
            var r = KernelBpf.TestRun(code, [fd, ro], new byte[72] { 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 });
            Assert.That(r.Errno, Is.EqualTo(0), "BPF_PROG_TEST_RUN");
            var value = new byte[ValueSize];
            Assert.That(KernelBpf.Lookup(fd, U32(0), value), Is.EqualTo(0));
            return value;
        }
        finally
        {
            KernelBpf.Close(fd);
            KernelBpf.Close(ro);
        }
    }
}
