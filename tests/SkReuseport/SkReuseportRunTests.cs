using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// SK_REUSEPORT programs on both engines: the <c>sk_reuseport_md</c> context (full and narrow loads, the packet
/// through data/data_end), <c>bpf_sk_select_reuseport</c>'s checks and errnos, and the packet helpers.
/// </summary>
[TestFixture]
public class SkReuseportRunTests
{
    sealed class World : IDisposable
    {
        public readonly NetNamespace Ns = new();
        public readonly Sock A, B, Udp, Other6, OtherUdp, OtherTcp;
        public readonly BpfMap Array = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 8, 0, "rp");
        public readonly BpfMap SockMap = MapFactory.Create(MapType.SockMap, 4, 8, 8, 0, "sm");

        public World()
        {
            A = Tcp(Ns, "127.0.0.1:8080", reuseport: true);
            B = Tcp(Ns, "127.0.0.1:8080", reuseport: true);
            Udp = BpfJit.Tests.SkLookup.SkTestSupport.Udp(Ns, "127.0.0.1:8080", reuseport: true);
            OtherTcp = Tcp(Ns, "127.0.0.1:9090", reuseport: true);
            Other6 = Tcp(Ns, "[::1]:8080", reuseport: true);
            OtherUdp = BpfJit.Tests.SkLookup.SkTestSupport.Udp(Ns, "127.0.0.1:9090", reuseport: true);
            A.Name = "A"; B.Name = "B";
            Put(Array, 0, A);
            Put(Array, 1, B);
            Put(Array, 2, Udp);
            Put(Array, 3, Other6);
            Put(Array, 4, OtherTcp);
        }

        public static void Put(BpfMap map, uint key, Sock s) =>
            Assert.That(map.Update(BitConverter.GetBytes(key), BitConverter.GetBytes(s.Cookie)), Is.Zero);

        public ReuseportGroup Group => A.ReuseportGroup!;

        public void Dispose()
        {
            Array.Dispose();
            SockMap.Dispose();
            Ns.Dispose();
        }
    }

    static SkReuseportProgram Load(string engine, string asm) => SkReuseportProgram.Load("prog", Assembler.Assemble(asm), Engines.Get(engine));

    static string Select(BpfMap map, uint key, string ret = "mov %r0, %r7") => $"""
        mov %r6, %r1
        stw [%r10-4], {key}
        mov %r1, %r6
        lddw %r2, 0x{map.Handle:x}
        mov %r3, %r10
        add %r3, -4
        mov %r4, 0
        call 82
        mov %r7, %r0
        {ret}
        exit
        """;

    static uint Run(string engine, World w, string asm, Packet? packet = null, uint hash = 0x12345678)
    {
        using var p = Load(engine, asm);
        return p.TestRun(w.Group, w.A, packet ?? Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080"), hash).Retval;
    }

    // (load, expected) over a TCP SYN 127.0.0.9:40000 -> 127.0.0.1:8080 for group 127.0.0.1:8080 found at A, hash 0x12345678.
    static readonly (string Asm, uint Expect)[] s_fields =
    [
        ("ldxw %r0, [%r1+16]", 20),                 // len: a 20-byte SYN
        ("ldxw %r0, [%r1+20]", 0x0008),             // eth_protocol: htons(ETH_P_IP)
        ("ldxh %r0, [%r1+20]", 0x0008),
        ("ldxh %r0, [%r1+22]", 0x0008),             // as wide as the kernel's __be16: the field itself
        ("ldxw %r0, [%r1+24]", 6),                  // ip_protocol
        ("ldxh %r0, [%r1+26]", 6),
        ("ldxb %r0, [%r1+24]", 6),
        ("ldxb %r0, [%r1+25]", 0),
        ("ldxb %r0, [%r1+26]", 0),
        ("ldxw %r0, [%r1+28]", 0),                  // bind_inany: 127.0.0.1 is not the wildcard
        ("ldxw %r0, [%r1+32]", 0x12345678),         // hash
        ("ldxb %r0, [%r1+33]", 0x56),               // a narrow load of a plain u32
        ("ldxh %r0, [%r1+18]", 0),                  // len's high half
        ("ldxdw %r2, [%r1+40]\nldxw %r0, [%r2+44]", 8080),   // sk->src_port
        ("ldxdw %r0, [%r1+48]", 0),                 // migrating_sk: NULL
        ("ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, %r3\nsub %r0, %r2", 20),   // data_end - data
        ("ldxdw %r2, [%r1+0]\nldxh %r0, [%r2+2]\nbe16 %r0", 8080),                    // tcp dest port
        ("ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+13]", 2),                                // SYN
    ];

    [Test]
    public void ContextFields([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World();
        foreach (var (asm, expect) in s_fields)
            Assert.That(Run(engine, w, asm + "\nexit"), Is.EqualTo(expect), asm);
    }

    [Test]
    public void BindInanyNarrowLoadsReadTheBool([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World();
        var any = Tcp(w.Ns, "0.0.0.0:7070", reuseport: true);
        foreach (var asm in new[] { "ldxw %r0, [%r1+28]", "ldxh %r0, [%r1+28]", "ldxh %r0, [%r1+30]", "ldxb %r0, [%r1+28]", "ldxb %r0, [%r1+29]", "ldxb %r0, [%r1+31]" })
        {
            using var p = Load(engine, asm + "\nexit");
            Assert.That(p.TestRun(any.ReuseportGroup!, any, Pkt("tcp", "127.0.0.9:1", "127.0.0.1:7070")).Retval, Is.EqualTo(1), asm);
        }
    }

    [Test]
    public void UdpPacketBytes([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World();
        byte[] payload = [0, 53, 0x1f, 0x90, 0, 12, 0, 0, (byte)'p', (byte)'i', (byte)'n', (byte)'g'];
        var packet = Pkt("udp", "127.0.0.9:53", "127.0.0.1:8080") with { Bytes = payload };
        using var p = Load(engine, "ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+11]\nexit");
        var r = p.TestRun(w.Udp.ReuseportGroup!, w.Udp, packet);
        Assert.That(r.Retval, Is.EqualTo((uint)'g'));
        using var len = Load(engine, "ldxw %r0, [%r1+16]\nexit");
        Assert.That(len.TestRun(w.Udp.ReuseportGroup!, w.Udp, packet).Retval, Is.EqualTo(12u));
    }

    // key -> bpf_sk_select_reuseport's result for a program running for A's group (TCP, AF_INET).
    [TestCase(0u, 0)]                       // A itself
    [TestCase(1u, 0)]                       // B
    [TestCase(5u, -Errno.ENOENT)]           // an empty slot
    [TestCase(100u, -Errno.ENOENT)]         // past max_entries
    [TestCase(2u, -Errno.EPROTOTYPE)]       // a UDP socket of another group
    [TestCase(3u, -Errno.EAFNOSUPPORT)]     // a TCP AF_INET6 socket of another group
    [TestCase(4u, -Errno.EBADFD)]           // same protocol and family, another group (another port)
    public void SelectFromSockArray(uint key, int expect)
    {
        foreach (var engine in Engines.Names)
        {
            using var w = new World();
            using var p = Load(engine, Select(w.Array, key));
            var (ret, selected) = p.TestRun(w.Group, w.A, Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080"));
            Assert.That((int)ret, Is.EqualTo(expect), engine);
            Assert.That(selected, Is.EqualTo(expect == 0 ? (key == 0 ? w.A : w.B) : null), engine);
        }
    }

    [Test]
    public void SelectFromSockArrayAfterClose([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World();
        using var p = Load(engine, Select(w.Array, 1));
        w.B.Close();
        Assert.That((int)p.TestRun(w.Group, w.A, Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080")).Retval, Is.EqualTo(-Errno.ENOENT));
    }

    [Test]
    public void SelectFromSockMap([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World();
        var plain = Tcp(w.Ns, "127.0.0.1:6060");
        var established = Tcp(w.Ns, "127.0.0.1:6061", listen: false);
        established.Connect(Ep("127.0.0.9:1"));
        // A socket's sk_user_data is the REUSEPORT_SOCKARRAY slot's or a SOCKMAP psock's, never both: out of the array first.
        Assert.That(w.Array.Delete(BitConverter.GetBytes(1u)), Is.Zero);
        Assert.That(w.Array.Delete(BitConverter.GetBytes(4u)), Is.Zero);
        World.Put(w.SockMap, 0, w.B);
        World.Put(w.SockMap, 1, plain);
        World.Put(w.SockMap, 2, established);
        World.Put(w.SockMap, 3, w.OtherTcp);
        // Bound with SO_REUSEPORT to the group's address, then connected: Linux hashes only listeners in a group.
        var inGroupEstablished = Tcp(w.Ns, "127.0.0.1:8080", listen: false, reuseport: true);
        inGroupEstablished.Connect(Ep("127.0.0.9:2"));
        World.Put(w.SockMap, 5, inGroupEstablished);
        var packet = Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080");
        foreach (var (key, expect) in new[] { (0u, 0), (1u, -Errno.EINVAL), (2u, -Errno.EINVAL), (3u, -Errno.EBADFD), (4u, -Errno.ENOENT), (5u, -Errno.EINVAL) })
        {
            using var p = Load(engine, Select(w.SockMap, key));
            Assert.That((int)p.TestRun(w.Group, w.A, packet).Retval, Is.EqualTo(expect), $"key {key}");
        }
        Assert.That(established.ProgramReferences, Is.Zero, "the lookup's reference on a refcounted socket is dropped on the error path");
    }

    // (offset, len, start_header or -1 for skb_load_bytes) -> result, over a 20-byte TCP SYN in IPv4.
    [TestCase(0u, 4u, -1, 0)]
    [TestCase(16u, 4u, -1, 0)]
    [TestCase(17u, 4u, -1, -Errno.EFAULT)]
    [TestCase(0x80000000u, 1u, -1, -Errno.EFAULT)]
    [TestCase(0u, 4u, 0, 0)]                // MAC header
    [TestCase(50u, 4u, 0, 0)]               // 14 + 20 + 20 = 54 bytes from the MAC header
    [TestCase(51u, 4u, 0, -Errno.EFAULT)]
    [TestCase(36u, 4u, 1, 0)]               // 20 + 20 = 40 bytes from the network header
    [TestCase(37u, 4u, 1, -Errno.EFAULT)]
    [TestCase(0x10000u, 1u, 1, -Errno.EFAULT)]
    [TestCase(0u, 4u, 2, -Errno.EFAULT)]    // neither MAC nor NET
    public void LoadBytes(uint offset, uint len, int start, int expect)
    {
        foreach (var engine in Engines.Names)
        {
            using var w = new World();
            string call = start < 0 ? "call 26" : $"mov %r5, {start}\ncall 68";
            // The destination is prefilled with 0xff: a failure must zero it.
            string asm = $"""
                stdw [%r10-8], -1
                mov %r2, {(int)offset}
                mov %r3, %r10
                add %r3, -8
                mov %r4, {len}
                {call}
                ldxb %r1, [%r10-8]
                jeq %r0, 0, ok
                jeq %r1, 0, ok
                mov %r0, 99
                ok:
                exit
                """;
            Assert.That((int)Run(engine, w, asm), Is.EqualTo(expect), engine);
        }
    }

    [Test]
    public void LoadBytesReadsTheHeaders([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World();
        // The EtherType at MAC+12 (08 00), the IPv4 protocol at NET+9, the TCP destination port at 2.
        string Load(int start, int offset, int size) => $"""
            mov %r2, {offset}
            mov %r3, %r10
            add %r3, -8
            mov %r4, {size}
            mov %r5, {start}
            call 68
            ldxh %r0, [%r10-8]
            exit
            """;
        Assert.That(Run(engine, w, Load(0, 12, 2)), Is.EqualTo(0x0008u));
        Assert.That(Run(engine, w, Load(1, 9, 1) .Replace("ldxh", "ldxb")), Is.EqualTo(6u));
        Assert.That(Run(engine, w, "mov %r2, 2\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\ncall 26\nldxh %r0, [%r10-8]\nbe16 %r0\nexit"), Is.EqualTo(8080u));
    }
}

/// <summary>
/// The JIT with the verifier's facts folds each context load at compile time (<see cref="SkReuseportLayout.Fold"/>);
/// the interpreter reads the block after the narrow-load rewrite: every load the kernel accepts answers the same.
/// </summary>
[TestFixture]
public class SkReuseportVerifiedCtxTests
{
    [Test]
    public void EveryAcceptedScalarLoadAgreesAcrossEngines()
    {
        using var ns = new NetNamespace();
        var a = Tcp(ns, "0.0.0.0:8080", reuseport: true);
        var helpers = SkReuseportHelpers.CreateTable();
        var type = BpfJit.Runtime.ProgramTypes.SkReuseport.SkReuseportType.Instance;
        int checkedLoads = 0;
        foreach (var (op, size) in new[] { ("ldxb", 1), ("ldxh", 2), ("ldxw", 4) })
            for (int off = 16; off < 36; off++)
            {
                if (type.ContextAccess(off, size, write: false) == null) continue;
                var code = Assembler.Assemble($"{op} %r0, [%r1+{off}]\nexit");
                var result = BpfJit.Verifier.Verifier.Verify(code, new BpfJit.Verifier.VerifierOptions
                {
                    Helpers = helpers, ProgramType = BpfJit.Frontend.Elf.ProgramType.SkReuseport,
                });
                var facts = BpfJit.Verifier.ProgramFactsBuilder.ToProgramFacts(result, code, null, BpfJit.Frontend.Elf.ProgramType.SkReuseport);
                Assert.That(facts[0].CtxField, Is.Not.Null, $"{op} {off}: the verifier names the field");
                using var jit = SkReuseportProgram.Load("v", code, Engines.Get("jit"), helpers, facts);
                using var interp = SkReuseportProgram.Load("i", code, Engines.Get("interpreter"), helpers);
                var packet = Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080");
                uint expected = Expected(off, size);
                Assert.That(jit.TestRun(a.ReuseportGroup!, a, packet, 0x12345678).Retval, Is.EqualTo(expected), $"jit with facts: {op} {off}");
                Assert.That(interp.TestRun(a.ReuseportGroup!, a, packet, 0x12345678).Retval, Is.EqualTo(expected), $"interpreter: {op} {off}");
                checkedLoads++;
            }
        Assert.That(checkedLoads, Is.EqualTo(7 + 3 + 7 + 7 + 1), "every narrow load of len, eth_protocol, ip_protocol, bind_inany and hash");
    }

    // The kernel's answers over a 20-byte SYN for a group bound to 0.0.0.0 (bind_inany 1), TCP, hash 0x12345678.
    static uint Expected(int off, int size)
    {
        uint len = 20, eth = 0x0008, proto = 6, hash = 0x12345678;
        return off switch
        {
            >= 16 and < 20 => (uint)((len >> ((off - 16) * 8)) & (size == 4 ? uint.MaxValue : (1u << (size * 8)) - 1)),
            >= 20 and < 24 => eth,
            >= 24 and < 28 => size == 1 ? (off == 24 ? proto : 0) : proto,
            >= 28 and < 32 => 1,
            _ => hash,
        };
    }
}
