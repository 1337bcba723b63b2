using System.Text;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>bpf_trace_printk: the kernel's format rules and the host sink.</summary>
[TestFixture, NonParallelizable]
public class TracePrintkTests
{
    static unsafe (int Result, string Text) Format(string fmt, params ulong[] args)
    {
        var bytes = Encoding.Latin1.GetBytes(fmt + "\0");
        fixed (byte* p = bytes)
        {
            int r = TracePrintkFormat.Format(p, (ulong)bytes.Length, args, out string text);
            return (r, text);
        }
    }

    static IEnumerable<TestCaseData> Good()
    {
        TestCaseData C(string fmt, string expected, params ulong[] args) => new TestCaseData(fmt, args, expected).SetName($"formats \"{fmt}\" as \"{expected}\"");
        yield return C("plain text\n", "plain text\n");
        yield return C("%d", "-1", ulong.MaxValue);
        yield return C("%d", "1", 0x1_0000_0001);
        yield return C("%i", "-5", unchecked((ulong)-5L));
        yield return C("%u", "4294967295", ulong.MaxValue);
        yield return C("%x", "ffffffff", ulong.MaxValue);
        yield return C("%X", "ABC", 0xabc);
        yield return C("%lx", "ffffffffffffffff", ulong.MaxValue);
        yield return C("%llu", "18446744073709551615", ulong.MaxValue);
        yield return C("%lld", "-2", unchecked((ulong)-2L));
        yield return C("%ld %lu", "-1 3", ulong.MaxValue, 3);
        yield return C("%c%c", "hi", 'h', 'i');
        yield return C("100%%", "100%");
        yield return C("[%5d]", "[   42]", 42);
        yield return C("[%-5d]", "[42   ]", 42);
        yield return C("[%05d]", "[-0042]", unchecked((ulong)-42L));
        yield return C("[%+d]", "[+7]", 7);
        yield return C("%08x", "0000beef", 0xbeef);
        yield return C("%p", "00000000deadbeef", 0xdeadbeef);
        yield return C("%px!", "0000000000001000!", 0x1000);
        yield return C("%pK", "0000000000000010", 0x10);
        yield return C("a=%d b=%d c=%d", "a=1 b=2 c=3", 1, 2, 3);
        yield return C("%s", "", 0);
    }

    [TestCaseSource(nameof(Good))]
    public void Formats(string fmt, ulong[] args, string expected)
    {
        var (result, text) = Format(fmt, args);
        Assert.That(text, Is.EqualTo(expected));
        Assert.That(result, Is.EqualTo(expected.Length));
    }

    [TestCase("%d %d %d %d")]     // four conversions: more than MAX_TRACE_PRINTK_VARARGS
    [TestCase("%f")]
    [TestCase("%")]
    [TestCase("%lf")]
    [TestCase("%n")]
    [TestCase("%pZ")]
    [TestCase("bell\a")]
    [TestCase("caf\u00e9")]
    public void RejectsLikeTheKernel(string fmt)
    {
        Assert.That(Format(fmt, 1, 2, 3, 4).Result, Is.EqualTo(-Errno.EINVAL));
    }

    [Test]
    public unsafe void StringsAndAddresses()
    {
        var hello = Encoding.ASCII.GetBytes("hello\0");
        byte[] v4 = [192, 168, 1, 2];
        byte[] v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        fixed (byte* h = hello)
        fixed (byte* a = v4)
        fixed (byte* b = v6)
        {
            // bpf_trace_printk follows these pointers only inside regions a program may touch.
            using var regions = new RegisteredRegions(((ulong)h, hello.Length), ((ulong)a, v4.Length), ((ulong)b, v6.Length));
            Assert.That(Format("<%s>", (ulong)h).Text, Is.EqualTo("<hello>"));
            Assert.That(Format("<%6s>", (ulong)h).Text, Is.EqualTo("< hello>"));
            Assert.That(Format("%pks", (ulong)h).Text, Is.EqualTo("hello"));
            Assert.That(Format("%pI4 %pi4", (ulong)a, (ulong)a).Text, Is.EqualTo("192.168.1.2 192.168.001.002"));
            Assert.That(Format("%pI6", (ulong)b).Text, Is.EqualTo("2001:0db8:0000:0000:0000:0000:0000:0001"));
            Assert.That(Format("%pi6", (ulong)b).Text, Is.EqualTo("20010db8000000000000000000000001"));
        }
    }

    /// <summary>
    /// Pointers the program may not touch print what the kernel prints when its nofault copy fails
    /// (bpf_bprintf_prepare): nothing for a string, zeros for an address. A string stops at its region's end.
    /// </summary>
    [Test]
    public unsafe void UnreadablePointersPrintLikeTheKernel()
    {
        var bytes = Encoding.ASCII.GetBytes("abcdef");   // no NUL inside the region
        byte[] v4 = [10, 0, 0, 1];
        fixed (byte* p = bytes)
        fixed (byte* a = v4)
        {
            // Not registered: the same addresses are unreadable.
            Assert.That(Format("<%s>", (ulong)p).Text, Is.EqualTo("<>"));
            Assert.That(Format("%pI4 %pi4", (ulong)a, (ulong)a).Text, Is.EqualTo("0.0.0.0 000.000.000.000"));
            Assert.That(Format("%pI6", 0x10).Text, Is.EqualTo("0000:0000:0000:0000:0000:0000:0000:0000"));
            Assert.That(Format("%pi6", ulong.MaxValue).Text, Is.EqualTo("00000000000000000000000000000000"));
            Assert.That(Format("[%pks|%pus]", 0xdead, 0xbeef).Text, Is.EqualTo("[|]"));
            using var regions = new RegisteredRegions(((ulong)p, 4), ((ulong)a, v4.Length));
            Assert.That(Format("<%s>", (ulong)p).Text, Is.EqualTo("<abcd>"), "a string stops at the end of its region");
            Assert.That(Format("%pI4", (ulong)a).Text, Is.EqualTo("10.0.0.1"));
            Assert.That(Format("%pI4", (ulong)a + 1).Text, Is.EqualTo("0.0.0.0"), "an address running past its region is unreadable");
        }
    }

    /// <summary>Registers blocks as context regions for a test, and removes them again.</summary>
    sealed class RegisteredRegions : IDisposable
    {
        readonly (ulong Start, int Length)[] _blocks;

        public RegisteredRegions(params (ulong Start, int Length)[] blocks)
        {
            _blocks = blocks;
            foreach (var (start, length) in blocks) BpfJit.Runtime.Checked.MemoryRegions.Register(start, length, BpfJit.Runtime.Checked.MemoryRegionKind.Context);
        }

        public void Dispose()
        {
            foreach (var (start, _) in _blocks) BpfJit.Runtime.Checked.MemoryRegions.Unregister(start);
        }
    }

    [Test]
    public unsafe void FormatNeedsANulInsideItsSize()
    {
        var bytes = Encoding.ASCII.GetBytes("abc");
        fixed (byte* p = bytes)
            Assert.That(TracePrintkFormat.Format(p, 3, [], out _), Is.EqualTo(-Errno.EINVAL));
    }

    // bpf_printk("value %d from %s\n", r1, "rodata") with the format in a .rodata map.
    const string Printk = """
        mov %r3, %r1
        ldmapvalue %r1, 0, 0
        mov %r2, 18
        ldmapvalue %r4, 0, 18
        call 6
        exit
        """;

    [Test]
    public void ProgramWritesToTheSink([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var rodata = MapFactory.Create(MapType.Array, 4, 32, 1, MapFlags.ReadOnlyProg, ".rodata");
        var value = new byte[32];
        Encoding.ASCII.GetBytes("value %d from %s\n\0rodata\0").CopyTo(value, 0);
        rodata.Update(U32(0), value);
        var lines = new List<string>();
        TracePipe.Sink = lines.Add;
        try
        {
            ulong r0 = Run(engine, Printk, unchecked((ulong)-3L), rodata);
            Assert.That(lines, Is.EqualTo(new[] { "value -3 from rodata\n" }));
            Assert.That(r0, Is.EqualTo((ulong)"value -3 from rodata\n".Length));
        }
        finally
        {
            TracePipe.Sink = null;
        }
    }
}
