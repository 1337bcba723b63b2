using System.Buffers.Binary;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Every context load the verifier accepts (spec 1.1), on IPv4 and IPv6 lookups, through every
/// engine, against an oracle that applies the kernel's algorithm (spec 2) to the kernel's own
/// struct: the converter's target load, then narrow-load shift and mask only when size &lt; target,
/// then sign extension for LDSX.
/// </summary>
[TestFixture]
public class CtxAccessTests
{
    // (UAPI offset, recorded field size F, target size T)
    static readonly (int Off, int F, int T)[] s_fields =
    [
        (8, 4, 2), (12, 4, 2), (16, 4, 4), (20, 4, 4), (24, 4, 4), (28, 4, 4), (32, 4, 4),
        (36, 2, 2), (38, 2, 2), (40, 4, 4), (44, 4, 4), (48, 4, 4), (52, 4, 4), (56, 4, 4), (60, 4, 2), (64, 4, 4),
    ];

    static readonly Packet[] s_packets =
    [
        new(SocketProtocol.Tcp, Ep("127.0.0.2:32912"), Ep("10.128.255.1:65534"), unchecked((int)0x8badf00d)),
        new(SocketProtocol.Udp, Ep("[fd00::8002]:32912"), Ep("[ff02:8000:1234:5678:9abc:def0:fedc:ba98]:7007"), 1),
    ];

    static IEnumerable<(int Off, int Size)> Accesses()
    {
        yield return (0, 8);
        foreach (var (off, f, _) in s_fields)
        {
            if (off == 36) { yield return (36, 4); yield return (36, 2); yield return (36, 1); yield return (37, 1); continue; }
            if (off == 38) { yield return (38, 2); yield return (38, 1); yield return (39, 1); continue; }
            for (int k = 0; k < 4; k++) yield return (off + k, 1);
            yield return (off, 2);
            yield return (off + 2, 2);
            yield return (off, 4);
        }
    }

    static IEnumerable<TestCaseData> Cases()
    {
        foreach (var engine in Engines.Names)
            for (int p = 0; p < s_packets.Length; p++)
                foreach (var (off, size) in Accesses())
                    foreach (bool signed in new[] { false, true })
                        foreach (string via in new[] { "r1", "copy", "spill" })
                        {
                            if (signed && size == 8) continue;
                            yield return new TestCaseData(engine, p, off, size, signed, via)
                                .SetName($"ctx[{engine}] {(p == 0 ? "v4" : "v6")} {(signed ? "ldxs" : "ldx")}{size * 8}@{off} via {via}");
                        }
    }

    // The kernel's value for an access, from bpf_sk_lookup_kern and the rewrite (spec 2).
    static ulong Oracle(in Packet p, nint selected, int off, int size, bool signed)
    {
        if (off == 0) return (ulong)selected;
        var (fOff, f, t) = s_fields.Last(x => x.Off <= off);
        bool v6 = p.Family == SocketFamily.Inet6;
        Span<byte> a = stackalloc byte[16];
        ulong v = fOff switch
        {
            8 => (ushort)p.Family,
            12 => (ushort)p.Protocol,
            16 => v6 ? 0 : p.From.Address.Ip4Raw,
            40 => v6 ? 0 : p.To.Address.Ip4Raw,
            36 => BinaryPrimitives.ReverseEndianness(p.From.Port),
            38 => 0,
            60 => p.To.Port,
            64 => (uint)p.IngressIfindex,
            >= 20 and < 36 => v6 ? Word(p.From.Address, (fOff - 20) / 4) : 0,
            _ => v6 ? Word(p.To.Address, (fOff - 44) / 4) : 0,
        };
        // remote_port's 4-byte load records no narrowing: it is a plain 2-byte target load.
        bool narrow = size < f;
        if (narrow && size < t)
        {
            v = (uint)v >> (8 * (off & (f - 1)));
            v &= size == 4 ? 0xffffffffUL : (1UL << (8 * size)) - 1;
        }
        if (signed)
        {
            v = size switch { 1 => (ulong)(long)(sbyte)v, 2 => (ulong)(long)(short)v, _ => (ulong)(long)(int)v };
        }
        return v;
    }

    static uint Word(InetAddress a, int i)
    {
        Span<byte> b = stackalloc byte[16];
        a.WriteBytes(b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b[(4 * i)..]);
    }

    [TestCaseSource(nameof(Cases))]
    public void LoadMatchesKernel(string engine, int packet, int off, int size, bool signed, string via)
    {
        using var ctx = new SkLookupContext();
        var p = s_packets[packet];
        ctx.Fill(p);
        ctx.SelectedSocket = unchecked((nint)0x7f0011223344);
        string sz = size switch { 1 => "b", 2 => "h", 4 => "w", _ => "dw" };
        string load = $"ldx{(signed ? "s" : "")}{sz}";
        string asm = via switch
        {
            "r1" => $"{load} %r0, [%r1+{off}]\nexit",
            "copy" => $"mov %r6, %r1\nmov %r1, 0\n{load} %r0, [%r6+{off}]\nexit",
            _ => $"stxdw [%r10-16], %r1\nmov %r1, 0\nja l\nl:\nldxdw %r7, [%r10-16]\n{load} %r0, [%r7+{off}]\nexit",
        };
        ulong got = RunRaw(engine, asm, ctx);
        ulong want = Oracle(p, ctx.SelectedSocket, off, size, signed);
        Assert.That(got, Is.EqualTo(want), $"0x{got:x} != kernel 0x{want:x}");
    }

    [Test]
    public void SpecExamples()
    {
        // Spec 1.1: LDSX16 at 36 on raw bytes 80 90, LDSX16 at 60 with local_port 0xfffe; 1.2: port 8008 reads 0x481f.
        using var ctx = new SkLookupContext();
        ctx.Fill(new Packet(SocketProtocol.Tcp, Ep("127.0.0.2:32912"), Ep("127.0.0.1:65534")));
        foreach (var engine in Engines.Names)
        {
            Assert.That(RunRaw(engine, "ldxsh %r0, [%r1+36]\nexit", ctx), Is.EqualTo(0xffffffffffff9080UL));
            Assert.That(RunRaw(engine, "ldxsh %r0, [%r1+60]\nexit", ctx), Is.EqualTo(0xfffffffffffffffeUL));
            Assert.That(RunRaw(engine, "ldxh %r0, [%r1+62]\nexit", ctx), Is.EqualTo(0xfffeUL), "2-byte load at local_port+2 returns the field");
        }
        ctx.Fill(new Packet(SocketProtocol.Tcp, Ep("127.0.0.2:8008"), Ep("127.0.0.1:7007")));
        foreach (var engine in Engines.Names)
        {
            Assert.That(RunRaw(engine, "ldxw %r0, [%r1+36]\nexit", ctx), Is.EqualTo(0x481fUL));
            Assert.That(RunRaw(engine, "ldxh %r0, [%r1+10]\nexit", ctx), Is.EqualTo(2UL));
            Assert.That(RunRaw(engine, "ldxh %r0, [%r1+14]\nexit", ctx), Is.EqualTo(6UL));
            Assert.That(RunRaw(engine, "ldxb %r0, [%r1+10]\nexit", ctx), Is.EqualTo(0UL));
        }
    }

    [Test]
    public void RewriterLeavesOtherRegistersAlone()
    {
        // r2 is a stack pointer, not ctx: its 2-byte load at +10 must stay where it is.
        var code = BpfJit.Frontend.Assembler.Assemble("mov %r2, %r10\nadd %r2, -32\nldxh %r0, [%r2+10]\nldxh %r3, [%r1+10]\nexit");
        Assert.That(CtxLoadRewriter.FindQuirkLoads(code), Is.EqualTo(new[] { 3 }));
        // After a helper call r1 no longer holds ctx.
        code = BpfJit.Frontend.Assembler.Assemble("call 124\nldxh %r0, [%r1+14]\nexit");
        Assert.That(CtxLoadRewriter.FindQuirkLoads(code), Is.Empty);
        // Paths that disagree: ctx on one, a scalar on the other.
        code = BpfJit.Frontend.Assembler.Assemble("mov %r6, %r1\njeq %r2, 0, l\nmov %r6, 0\nl:\nldxh %r0, [%r6+62]\nexit");
        Assert.That(CtxLoadRewriter.FindQuirkLoads(code), Is.Empty);
        // Through a bpf-to-bpf call with ctx in r1.
        code = BpfJit.Frontend.Assembler.Assemble("call local f\nexit\nf:\nldxh %r0, [%r1+62]\nexit");
        Assert.That(CtxLoadRewriter.FindQuirkLoads(code), Is.EqualTo(new[] { 2 }));
    }
}
