using System.Buffers.Binary;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// SO_ATTACH_REUSEPORT_CBPF's classic programs: what <c>bpf_check_classic</c> refuses (-EINVAL, the instruction
/// named), what they compute on fixed packets (the payload after the transport header, as <c>run_bpf_filter</c>
/// pulls it), and how a group selects with one attached. The kernel's answers for the same programs on real sockets
/// are in <see cref="ReuseportClassicOracleTests"/>.
/// </summary>
[TestFixture]
public class ClassicFilterTests
{
    internal static SockFilter S(ushort code, uint k = 0, byte jt = 0, byte jf = 0) => new(code, jt, jf, k);

    internal const uint AdOff = 0xfffff000, NetOff = 0xfff00000, LlOff = 0xffe00000;

    public static IEnumerable<TestCaseData> Refused()
    {
        yield return new TestCaseData(Array.Empty<SockFilter>(), "0 instructions").SetName("empty");
        yield return new TestCaseData(Enumerable.Repeat(S(0x06), 4097).ToArray(), "4097 instructions").SetName("4097 instructions");
        yield return new TestCaseData(new[] { S(0x00), S(0x0e) }, "insn 1: unknown opcode 0x0e").SetName("ret x");
        yield return new TestCaseData(new[] { S(0x38), S(0x06) }, "insn 0: unknown opcode 0x38").SetName("ld dw abs");
        yield return new TestCaseData(new[] { S(0x34, 0), S(0x06) }, "insn 0: division by constant 0").SetName("div #0");
        yield return new TestCaseData(new[] { S(0x00), S(0x94, 0), S(0x06) }, "insn 1: division by constant 0").SetName("mod #0");
        yield return new TestCaseData(new[] { S(0x64, 32), S(0x06) }, "insn 0: shift by 32").SetName("lsh #32");
        yield return new TestCaseData(new[] { S(0x02, 16), S(0x06) }, "insn 0: scratch memory index 16").SetName("st M[16]");
        yield return new TestCaseData(new[] { S(0x60, 3), S(0x06) }, "insn 0: M[3] read before").SetName("ld M[3] unwritten");
        yield return new TestCaseData(new[] { S(0x15, 1, 0, 1), S(0x02, 2), S(0x60, 2), S(0x06) }, "insn 2: M[2] read before").SetName("M[2] written on one path");
        yield return new TestCaseData(new[] { S(0x05, 1), S(0x06) }, "insn 0: jump out of range").SetName("ja past the end");
        yield return new TestCaseData(new[] { S(0x15, 0, 2, 0), S(0x06) }, "insn 0: jump out of range").SetName("jeq past the end");
        yield return new TestCaseData(new[] { S(0x00), S(0x00) }, "insn 1: the last instruction is not a RET").SetName("no ret");
        yield return new TestCaseData(new[] { S(0x20, AdOff + 64), S(0x06) }, "insn 0: unknown ancillary load SKF_AD_OFF+64").SetName("SKF_AD_MAX");
    }

    [TestCaseSource(nameof(Refused))]
    public void Check_refuses_with_einval_naming_the_instruction(SockFilter[] code, string message)
    {
        var e = Assert.Throws<SocketErrorException>(() => _ = new ClassicFilter(code))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.EINVAL));
        Assert.That(e.Message, Does.Contain(message));
    }

    [Test]
    public void Check_accepts_what_the_kernel_accepts()
    {
        // Ancillary loads of any size, IND loads into the ancillary range, a store on both paths, M[] valid after a RET.
        Assert.DoesNotThrow(() => _ = new ClassicFilter([S(0x30, AdOff + 36), S(0x40, AdOff + 64), S(0x06)]));
        Assert.DoesNotThrow(() => _ = new ClassicFilter([S(0x02, 1), S(0x15, 1, 0, 1), S(0x06), S(0x60, 1), S(0x16)]));
        Assert.DoesNotThrow(() => _ = new ClassicFilter(Enumerable.Repeat(S(0x06), 4096)));
        var decoded = ClassicFilter.Decode([0x06, 0, 0, 0, 7, 0, 0, 0]);
        Assert.That(decoded.Code, Is.EqualTo(new[] { S(0x06, 7) }));
    }

    internal static Packet UdpPacket(byte[] payload, ushort sourcePort = 40000)
    {
        var p = Pkt("udp", $"127.0.0.1:{sourcePort}", "127.0.0.1:9000");
        var bytes = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), 9000);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), (ushort)bytes.Length);
        payload.CopyTo(bytes, 8);
        return p with { Bytes = bytes };
    }

    static readonly byte[] Hello = "hello world!"u8.ToArray();

    public static IEnumerable<TestCaseData> Runs()
    {
        // Values as Linux 6.18 returned them for the same filter on a UDP datagram "hello world!" over loopback.
        yield return new TestCaseData(new[] { S(0x20, 0), S(0x16) }, 0x68656c6cu).SetName("ld [0] reads the payload");
        yield return new TestCaseData(new[] { S(0x80), S(0x16) }, 12u).SetName("ld len is the payload's length");
        yield return new TestCaseData(new[] { S(0x20, NetOff), S(0x16) }, 0x45000028u).SetName("ld [net+0]");
        yield return new TestCaseData(new[] { S(0x28, LlOff + 12), S(0x16) }, 0x800u).SetName("ldh [ll+12]");
        yield return new TestCaseData(new[] { S(0x20, AdOff + 0), S(0x16) }, 0x800u).SetName("ld #proto");
        yield return new TestCaseData(new[] { S(0x20, AdOff + 28), S(0x16) }, 772u).SetName("ld #hatype on lo");
        yield return new TestCaseData(new[] { S(0x20, AdOff + 52), S(0x16) }, 20u).SetName("ld #poff (udp)");
        yield return new TestCaseData(new[] { S(0x20, AdOff + 8), S(0x16) }, 1u).SetName("ld #ifindex");
        yield return new TestCaseData(new[] { S(0x20, 9), S(0x06, 5) }, 0u).SetName("a load past the end returns 0");
        yield return new TestCaseData(new[] { S(0x01, 12), S(0x50, 0), S(0x06, 5) }, 0u).SetName("ldb [x+0] past the end returns 0");
        yield return new TestCaseData(new[] { S(0x00, 9), S(0x01, 0), S(0x3c), S(0x06, 5) }, 0u).SetName("div x=0 returns 0");
        yield return new TestCaseData(new[] { S(0xb1, NetOff), S(0x87), S(0x16) }, 20u).SetName("ldxb 4*([net+0]&0xf)");
        yield return new TestCaseData(new[] { S(0x00, 5), S(0x02, 3), S(0x00, 1), S(0x61, 3), S(0x0c), S(0x84), S(0x16) }, unchecked((uint)-6)).SetName("st, ldx M[], add x, neg");
        yield return new TestCaseData(new[] { S(0x30, 0), S(0x15, 0x68, 0, 1), S(0x06, 1), S(0x06, 2) }, 1u).SetName("jeq taken");
        yield return new TestCaseData(new[] { S(0x30, 0), S(0x45, 1, 0, 1), S(0x06, 1), S(0x05, 1), S(0x06, 3), S(0x06, 2) }, 2u).SetName("jset not taken, ja");
        yield return new TestCaseData(new[] { S(0x00, 7), S(0x64, 4), S(0x74, 1), S(0x94, 5), S(0x16) }, (7u << 4 >> 1) % 5).SetName("lsh rsh mod");
    }

    [TestCaseSource(nameof(Runs))]
    public void Runs_on_the_payload(SockFilter[] code, uint expected) =>
        Assert.That(new ClassicFilter(code).Run(UdpPacket(Hello), 0), Is.EqualTo(expected));

    [Test]
    public void Nlattr_finds_the_attribute_offset()
    {
        // Two attributes (len 8, types 1 and 2): the second sits at offset 8 (Linux 6.18 returned 8).
        byte[] payload = [8, 0, 1, 0, (byte)'a', (byte)'b', (byte)'c', (byte)'d', 8, 0, 2, 0, (byte)'e', (byte)'f', (byte)'g', (byte)'h'];
        var f = new ClassicFilter([S(0x01, 2), S(0x00, 0), S(0x20, AdOff + 12), S(0x16)]);
        Assert.That(f.Run(UdpPacket(payload), 0), Is.EqualTo(8u));
    }

    [Test]
    public void Tcp_data_starts_after_the_tcp_header()
    {
        var syn = Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:9000");
        Assert.That(new ClassicFilter([S(0x80), S(0x16)]).Run(syn, 0), Is.EqualTo(0u));
        Assert.That(new ClassicFilter([S(0x30, NetOff + 9), S(0x16)]).Run(syn, 0), Is.EqualTo(6u));
        var shortUdp = Pkt("udp", "127.0.0.9:40000", "127.0.0.1:9000") with { Bytes = new byte[4] };
        Assert.That(new ClassicFilter([S(0x06, 1)]).Run(shortUdp, 0), Is.Null, "the pull of the UDP header fails");
    }

    [Test]
    public void A_group_selects_the_member_the_filter_returns()
    {
        using var ns = new NetNamespace();
        var members = Enumerable.Range(0, 3).Select(_ => Udp(ns, "127.0.0.1:9000", reuseport: true)).ToArray();
        var group = members[0].ReuseportGroup!;
        // ldb [0]; and #3; ret a: the payload's first byte picks the member; 3 is past the last, so the hash decides.
        group.AttachClassic(new ClassicFilter([S(0x30, 0), S(0x54, 3), S(0x16)]));
        for (byte first = 0; first < 3; first++)
            Assert.That(ns.Lookup(UdpPacket([first, 0, 0, 0])).Socket, Is.SameAs(members[first]));
        var three = UdpPacket([3, 0, 0, 0]) with { FlowHash = 0xC0000000 };
        Assert.That(ns.Lookup(three).Socket, Is.SameAs(group.SelectByHash(0xC0000000, three)));
        Assert.That(group.SelectByHash(0xC0000000, three), Is.SameAs(members[2]));
        Assert.That(group.ClassicProgram, Is.Not.Null);
        group.Detach();
        Assert.That(group.ClassicProgram, Is.Null);
        Assert.That(Assert.Throws<SocketErrorException>(group.Detach)!.Errno, Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void A_classic_filter_replaces_an_ebpf_program_and_back()
    {
        using var ns = new NetNamespace();
        var members = Enumerable.Range(0, 2).Select(_ => Udp(ns, "127.0.0.1:9000", reuseport: true)).ToArray();
        var group = members[0].ReuseportGroup!;
        using (var drop = SkReuseportProgram.Load("drop", BpfJit.Frontend.Assembler.Assemble("mov %r0, 0\nexit"), BpfJit.IlEmitter.JitEngine.Instance))
        {
            group.Attach(drop);
            Assert.That(ns.Lookup(UdpPacket([1])).Outcome, Is.EqualTo(BpfJit.Runtime.SkLookup.LookupOutcome.Refused));
            group.AttachClassic(new ClassicFilter([S(0x06, 1)]));
            Assert.That(group.Program, Is.Null);
            Assert.That(ns.Lookup(UdpPacket([1])).Socket, Is.SameAs(members[1]));
            group.Attach(drop);
            Assert.That(group.ClassicProgram, Is.Null);
            Assert.That(ns.Lookup(UdpPacket([1])).Outcome, Is.EqualTo(BpfJit.Runtime.SkLookup.LookupOutcome.Refused));
        }
    }

    [Test]
    public void Parse_reads_tcpdump_ddd_text_in_lines_or_commas()
    {
        SockFilter[] expected = [S(0x30, NetOff + 9), S(0x14, 5), S(0x16)];
        Assert.That(ClassicFilter.Parse("# ldb [net+9], sub #5, ret a\n3\n48 0 0 4293918729\n20 0 0 5\n22 0 0 0\n").Code, Is.EqualTo(expected));
        Assert.That(ClassicFilter.Parse("3,48 0 0 -1048567,20 0 0 5,22 0 0 0").Code, Is.EqualTo(expected), "xt_bpf's one-line form, k signed");
        Assert.That(() => ClassicFilter.Parse("2\n6 0 0 0"), Throws.TypeOf<FormatException>().With.Message.Contains("the count says 2 instruction(s), 1 follow"));
        Assert.That(() => ClassicFilter.Parse("1\n6 0 0"), Throws.TypeOf<FormatException>().With.Message.Contains("line 2: '6 0 0' is not 'code jt jf k'"));
        Assert.That(() => ClassicFilter.Parse("x"), Throws.TypeOf<FormatException>().With.Message.Contains("line 1: 'x' is not the instruction count"));
        Assert.That(() => ClassicFilter.Parse("1\n52 0 0 0"), Throws.TypeOf<SocketErrorException>(), "then the kernel's check");
    }
}
