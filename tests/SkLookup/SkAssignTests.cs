using Errno = BpfJit.Runtime.Errno;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>bpf_sk_assign's ordered checks (spec 3.2), as a table, through every engine.</summary>
[TestFixture]
public class SkAssignTests
{
    const int Ok = 0;

    // socket kind, ctx "proto family", flags, preselected, expected errno (0 = success)
    static readonly (string Sock, string Ctx, ulong Flags, bool Pre, int Errno)[] s_matrix =
    [
        ("tcp4-listen", "tcp4", 0, false, Ok),
        ("tcp4-listen", "tcp4", 4, false, Errno.EINVAL),                  // 1: unknown flag, first of all
        ("null", "tcp4", 4, false, Errno.EINVAL),
        ("tcp-established", "tcp4", 1UL << 63, true, Errno.EINVAL),
        ("tcp-established", "tcp4", 0, false, Errno.ESOCKTNOSUPPORT),   // 2: refcounted
        ("tcp-bound", "tcp4", 0, false, Errno.ESOCKTNOSUPPORT),         // 2: not hashed as a listener
        ("udp-unbound", "udp4", 0, false, Errno.ESOCKTNOSUPPORT),       // 2: unbound UDP is refcounted
        ("tcp-closed", "tcp4", 0, false, Errno.ESOCKTNOSUPPORT),
        ("udp-connected", "udp4", 0, false, Errno.ESOCKTNOSUPPORT),     // 4: connected UDP
        ("udp-connected", "tcp6", 0, true, Errno.ESOCKTNOSUPPORT),      // 4 before 5 and 7
        ("tcp4-listen", "udp4", 0, false, Errno.EPROTOTYPE),            // 5
        ("tcp4-listen", "udp6", 0, true, Errno.EPROTOTYPE),             // 5 before 6 and 7
        ("udp4-bound", "tcp4", 0, false, Errno.EPROTOTYPE),
        ("tcp4-listen", "tcp6", 0, false, Errno.EAFNOSUPPORT),          // 6: AF_INET never serves v6
        ("tcp4-listen", "tcp6", 1, true, Errno.EAFNOSUPPORT),           // 6 before 7
        ("tcp6-v6only", "tcp4", 0, false, Errno.EAFNOSUPPORT),          // 6: v6only
        ("udp6-v6only", "udp4", 0, false, Errno.EAFNOSUPPORT),
        ("tcp6-dual", "tcp4", 0, false, Ok),                             // dual-stack may serve v4
        ("udp6-dual", "udp4", 0, false, Ok),
        ("tcp6-v6only", "tcp6", 0, false, Ok),
        ("udp4-bound", "udp4", 0, false, Ok),
        ("tcp4-listen", "tcp4", 0, true, Errno.EEXIST),                  // 7
        ("null", "tcp4", 0, true, Errno.EEXIST),                         // 7 also for NULL
        ("tcp4-listen", "tcp4", 1, true, Ok),                            // F_REPLACE
        ("null", "tcp4", 1, true, Ok),                                   // NULL + F_REPLACE clears
        ("null", "tcp4", 0, false, Ok),
        ("tcp4-listen", "tcp4", 2, false, Ok),                           // F_NO_REUSEPORT recorded
        ("tcp4-listen", "tcp4", 3, true, Ok),
    ];

    static IEnumerable<TestCaseData> Cases()
    {
        foreach (var engine in Engines.Names)
            foreach (var c in s_matrix)
                yield return new TestCaseData(engine, c.Sock, c.Ctx, c.Flags, c.Pre, c.Errno)
                    .SetName($"sk_assign[{engine}] {c.Sock} on {c.Ctx} flags={c.Flags} pre={c.Pre} -> {(c.Errno == 0 ? "0" : Errno.Name(c.Errno))}");
    }

    static Sock? Make(NetNamespace ns, string kind) => kind switch
    {
        "null" => null,
        "tcp4-listen" => Tcp(ns, "127.0.0.1:1001"),
        "tcp-bound" => Tcp(ns, "127.0.0.1:1002", listen: false),
        "tcp-established" => Established(ns),
        "tcp-closed" => Closed(ns),
        "udp-unbound" => Udp(ns, null),
        "udp-connected" => Udp(ns, "127.0.0.1:1003", peer: "127.0.0.9:53"),
        "udp4-bound" => Udp(ns, "127.0.0.1:1004"),
        "tcp6-v6only" => Tcp(ns, "[fd00::1]:1005", v6only: true),
        "tcp6-dual" => Tcp(ns, "[::]:1006", v6only: false),
        "udp6-v6only" => Udp(ns, "[fd00::1]:1007", v6only: true),
        "udp6-dual" => Udp(ns, "[::]:1008", v6only: false),
        _ => throw new ArgumentException(kind),
    };

    static Sock Established(NetNamespace ns)
    {
        var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        s.Bind(Ep("127.0.0.1:1009"));
        s.Connect(Ep("127.0.0.2:40000"));
        return s;
    }

    static Sock Closed(NetNamespace ns)
    {
        var s = Tcp(ns, "127.0.0.1:1010");
        s.Close();
        return s;
    }

    [TestCaseSource(nameof(Cases))]
    public void Matrix(string engine, string sockKind, string ctxKind, ulong flags, bool preselected, int errno)
    {
        var ns = new NetNamespace();
        var pre = Tcp(ns, "127.0.0.1:2000");
        var pre6 = Tcp(ns, "[fd00::1]:2000");
        // Keep a closed socket's block alive for the run: a program could still hold it.
        MapEpoch.Enter();
        try
        {
            var sock = Make(ns, sockKind);
            using var ctx = new SkLookupContext();
            bool v6 = ctxKind.EndsWith('6');
            string proto = ctxKind[..3];
            ctx.Fill(v6 ? Pkt(proto, "[fd00::2]:8008", "[fd00::1]:7007") : Pkt(proto, "127.0.0.2:8008", "127.0.0.1:7007"));
            if (preselected) ctx.SelectedSocket = v6 ? pre6.Handle : pre.Handle;
            nint before = ctx.SelectedSocket;
            string asm = $"lddw %r2, {Hex(sock?.Handle ?? 0)}\nlddw %r3, 0x{flags:x}\ncall 124\nexit";
            long ret = (long)RunRaw(engine, asm, ctx);
            Assert.That(ret, Is.EqualTo(-errno), $"returned {ret}");
            if (errno == 0)
            {
                Assert.That(ctx.SelectedSocket, Is.EqualTo(sock?.Handle ?? 0), "ctx->sk is the assigned socket");
                Assert.That(ctx.NoReuseport, Is.EqualTo((flags & 2) != 0));
            }
            else
            {
                Assert.That(ctx.SelectedSocket, Is.EqualTo(before), "a failed assign leaves the selection");
            }
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ProgramSeesAssignedSocketInCtx(string engine)
    {
        // access_ctx_sk: after an assign, ctx->sk reads back the socket and its bpf_sock fields.
        var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:3000");
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        string asm = $"""
            mov %r6, %r1
            lddw %r2, {Hex(a.Handle)}
            mov %r3, 0
            call 124
            jne %r0, 0, fail
            ldxdw %r7, [%r6+0]
            jeq %r7, 0, fail
            ldxw %r0, [%r7+4]
            jne %r0, 2, fail
            ldxw %r0, [%r7+8]
            jne %r0, 1, fail
            ldxw %r0, [%r7+72]
            jne %r0, 10, fail
            ldxw %r0, [%r7+44]
            jne %r0, 3000, fail
            mov %r0, 1
            exit
            fail:
            mov %r0, 0
            exit
            """;
        Assert.That(RunRaw(engine, asm, ctx), Is.EqualTo(1UL));
    }

    [Test]
    public void SockViewFields()
    {
        // Spec 4's observed listener: 127.0.0.1:8080, mark 7, priority 3.
        var ns = new NetNamespace();
        var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        s.Mark = 7;
        s.Priority = 3;
        s.Bind(Ep("127.0.0.1:8080"));
        s.Listen();
        unsafe
        {
            byte* p = (byte*)s.Handle;
            Assert.That(*(uint*)(p + 4), Is.EqualTo(2));
            Assert.That(*(uint*)(p + 8), Is.EqualTo(1));
            Assert.That(*(uint*)(p + 12), Is.EqualTo(6));
            Assert.That(*(uint*)(p + 16), Is.EqualTo(7));
            Assert.That(*(uint*)(p + 20), Is.EqualTo(3));
            Assert.That(*(uint*)(p + 24), Is.EqualTo(0x0100007fu));
            Assert.That(*(uint*)(p + 44), Is.EqualTo(8080));
            Assert.That(*(uint*)(p + 48), Is.EqualTo(0));
            Assert.That(*(uint*)(p + 72), Is.EqualTo(10));
            Assert.That(*(int*)(p + 76), Is.EqualTo(-1));
        }
        var u = Udp(ns, "127.0.0.1:9000");
        var v6 = Tcp(ns, "[::1]:8080", v6only: true);
        var c = Udp(ns, "127.0.0.1:9001", peer: "10.0.0.1:53");
        unsafe
        {
            Assert.That(*(uint*)((byte*)u.Handle + 8), Is.EqualTo(2));
            Assert.That(*(uint*)((byte*)u.Handle + 12), Is.EqualTo(17));
            Assert.That(*(uint*)((byte*)u.Handle + 72), Is.EqualTo(7));
            Assert.That(*(uint*)((byte*)v6.Handle + 24), Is.EqualTo(0x0600007fu), "the kernel's 127.0.0.6 placeholder");
            Assert.That(*(ushort*)((byte*)c.Handle + 48), Is.EqualTo(0x3500), "dst_port is network order");
            Assert.That(*(uint*)((byte*)c.Handle + 52), Is.EqualTo(0x0100000au));
            Assert.That(*(uint*)((byte*)c.Handle + 72), Is.EqualTo(1));
        }
    }
}
