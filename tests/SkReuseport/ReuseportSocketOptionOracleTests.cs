using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkReuseport.ClassicFilterTests;
using Errno = BpfJit.Runtime.Errno;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// When a socket joins its reuseport group, and what the socket options that attach a group's program check, against
/// the live kernel with real sockets (<see cref="RealReuseport"/>): a TCP socket joins at listen, not at bind
/// (<c>__inet_hash</c>, <c>inet_reuseport_add_sock</c>), so <c>socks[]</c> is in listen order, a bound socket that does
/// not listen is in no group, and a program attached before listen (a group of the socket's own, <c>reuseport_alloc</c>)
/// stays when the socket founds its group and goes when it joins one; SO_LOCK_FILTER refuses an attach from the socket
/// that set it (-EPERM), not from another member, and not a detach. The kernel's answers and BpfJit's must be the same.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportSocketOptionOracleTests
{
    const ushort Port = 9000, FirstSource = 40000;
    const int SoLockFilter = 44, SoDetachReuseportBpf = 68;
    const int Packets = 4;
    static readonly InetEndPoint Local = new(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);

    static SockFilter[] Ret(uint k) => [S(0x06, k)];

    static Packet Packet(bool tcp, int i) =>
        new(tcp ? SocketProtocol.Tcp : SocketProtocol.Udp, new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), (ushort)(FirstSource + i)), Local);

    static Sock NewSock(NetNamespace ns, bool tcp)
    {
        var s = ns.Sockets.Create(SocketFamily.Inet, tcp ? SocketProtocol.Tcp : SocketProtocol.Udp);
        s.ReusePort = true;
        return s;
    }

    static int Errno_(Action a)
    {
        try
        {
            a();
            return 0;
        }
        catch (SocketErrorException e)
        {
            return e.Errno;
        }
    }

    // The kernel's answers, or null where the oracle cannot run: BpfJit's side is still checked against the expected
    // values, and the comparison then reports the test ignored with the reason.
    static int[]? Kernel(Func<int[]> body)
    {
        try
        {
            RealReuseport.RequireAvailable();
        }
        catch (IgnoreException)
        {
            return null;
        }
        return RealReuseport.InFreshNamespace(body);
    }

    static void Compare(int[]? kernel, int[] ours, string what)
    {
        if (kernel == null)
        {
            RealReuseport.RequireAvailable();
            return;
        }
        TestContext.Out.WriteLine($"{what}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]");
        KernelOracle.Agrees(kernel.SequenceEqual(ours), () => $"{what}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]");
    }

    [Test]
    public void Lock_filter_refuses_the_locked_sockets_attach_only()
    {
        var kernel = Kernel(() =>
        {
            int a = RealReuseport.Member(false, Port), b = RealReuseport.Member(false, Port);
            int prog = RealReuseport.LoadProgram(Assembler.Assemble("mov %r0, 1\nexit"));
            try
            {
                return
                [
                    RealReuseport.SetSocketOption(a, SoLockFilter, 1),
                    RealReuseport.AttachClassic(a, Ret(0)),
                    RealReuseport.SetSocketOption(a, 52 /* SO_ATTACH_REUSEPORT_EBPF */, prog),
                    RealReuseport.AttachClassic(b, Ret(0)),
                    RealReuseport.SetSocketOption(a, SoDetachReuseportBpf, 0),
                    RealReuseport.SetSocketOption(a, SoDetachReuseportBpf, 0),
                    RealReuseport.SetSocketOption(a, SoLockFilter, 0),
                    RealReuseport.SetSocketOption(a, SoLockFilter, 1),
                    RealReuseport.SetSocketOption(b, 52, prog),
                ];
            }
            finally
            {
                RealReuseport.Close(a, b, prog);
            }
        });
        using var ns = new NetNamespace();
        var sa = NewSock(ns, false);
        sa.Bind(Local);
        var sb = NewSock(ns, false);
        sb.Bind(Local);
        using var program = SkReuseportProgram.Load("pass", Assembler.Assemble("mov %r0, 1\nexit"), Engines.Get("interpreter"));
        int[] ours =
        [
            Errno_(() => sa.FilterLocked = true),
            Errno_(() => sa.AttachReuseportFilter(new ClassicFilter(Ret(0)))),
            Errno_(() => sa.AttachReuseportProgram(program)),
            Errno_(() => sb.AttachReuseportFilter(new ClassicFilter(Ret(0)))),
            Errno_(sa.DetachReuseportProgram),
            Errno_(sa.DetachReuseportProgram),
            Errno_(() => sa.FilterLocked = false),
            Errno_(() => sa.FilterLocked = true),
            Errno_(() => sb.AttachReuseportProgram(program)),
        ];
        Assert.That(ours, Is.EqualTo(new[] { 0, Errno.EPERM, Errno.EPERM, 0, 0, Errno.ENOENT, Errno.EPERM, 0, 0 }), "BpfJit");
        Compare(kernel, ours, "SO_LOCK_FILTER sequence");
    }

    [Test]
    public void Tcp_members_are_in_listen_order()
    {
        RealReuseport.RequireAvailable();
        // Bound a, b, c; listening c, a, b: socks[] = [c, a, b], so "ret #k" delivers to the k-th to listen.
        var kernel = Kernel(() =>
        {
            int[] fds = [RealReuseport.NewSocket(true), RealReuseport.NewSocket(true), RealReuseport.NewSocket(true)];
            try
            {
                foreach (int fd in fds) RealReuseport.BindLoopback(fd, Port);
                foreach (int i in new[] { 2, 0, 1 }) RealReuseport.Listen(fds[i]);
                return [.. Enumerable.Range(0, 3).Select(k =>
                {
                    Assert.That(RealReuseport.AttachClassic(fds[0], Ret((uint)k)), Is.Zero);
                    return RealReuseport.Deliver(true, fds, (ushort)(FirstSource + k), Port, []);
                })];
            }
            finally
            {
                RealReuseport.Close(fds);
            }
        });
        using var ns = new NetNamespace();
        Sock[] socks = [NewSock(ns, true), NewSock(ns, true), NewSock(ns, true)];
        foreach (var s in socks) s.Bind(Local);
        foreach (int i in new[] { 2, 0, 1 }) socks[i].Listen();
        var ours = Enumerable.Range(0, 3).Select(k =>
        {
            socks[0].AttachReuseportFilter(new ClassicFilter(Ret((uint)k)));
            return Array.IndexOf(socks, ns.Lookup(Packet(true, k)).Socket);
        }).ToArray();
        Assert.That(ours, Is.EqualTo(new[] { 2, 0, 1 }), "BpfJit");
        Assert.That(ns.Sockets.FirstInChain(socks[0].ReuseportGroup!), Is.SameAs(socks[1]), "ctx->sk: the last to listen");
        Compare(kernel, ours, "listen order");
    }

    [Test]
    public void Tcp_ctx_sk_is_the_last_to_listen()
    {
        // Bound a, b, c; listening c, a, b: the program stores bpf_get_socket_cookie(ctx->sk), the member the lookup met
        // first in the listening chain, newest first: b, the last to listen (not c, the last bound).
        const long Marker = 0x7ead0021;
        string asm = $"""
            mov %r6, %r1
            ldxdw %r1, [%r6+40]
            call 46
            stxdw [%r10-8], %r0
            mov %r1, 0
            stxw [%r10-12], %r1
            lddw %r1, {Marker}
            mov %r2, %r10
            add %r2, -12
            mov %r3, %r10
            add %r3, -8
            mov %r4, 0
            call 2
            mov %r0, 1
            exit
            """;
        using var ns = new NetNamespace();
        Sock[] socks = [NewSock(ns, true), NewSock(ns, true), NewSock(ns, true)];
        foreach (var s in socks) s.Bind(Local);
        foreach (int i in new[] { 2, 0, 1 }) socks[i].Listen();
        using var seen = MapFactory.Create(BpfJit.Frontend.Elf.MapType.Array, 4, 8, 1, 0, "seen");
        using (var program = SkReuseportProgram.Load("seen", Assembler.Assemble(asm.Replace(Marker.ToString(), $"0x{(long)seen.Handle:x}")), Engines.Get("interpreter")))
            socks[0].AttachReuseportProgram(program);
        Assert.That(ns.Lookup(Packet(true, 0)).Outcome, Is.EqualTo(LookupOutcome.Socket));
        var value = new byte[8];
        Assert.That(seen.Lookup(BitConverter.GetBytes(0), value), Is.Zero);
        int[] ours = [Array.FindIndex(socks, s => s.Cookie == BitConverter.ToUInt64(value))];
        Assert.That(ours, Is.EqualTo(new[] { 1 }), "BpfJit");
        var kernel = Kernel(() =>
        {
            int[] fds = [RealReuseport.NewSocket(true), RealReuseport.NewSocket(true), RealReuseport.NewSocket(true)];
            int map = KernelMaps.CreateMap(2, 4, 8, 1, 0);
            try
            {
                foreach (int fd in fds) RealReuseport.BindLoopback(fd, Port);
                foreach (int i in new[] { 2, 0, 1 }) RealReuseport.Listen(fds[i]);
                var insns = Assembler.Assemble(asm.Replace(Marker.ToString(), $"0x{map:x}"));
                for (int i = 0; i < insns.Length; i++)
                    if (insns[i].IsLdImm64)
                    {
                        insns[i] = insns[i] with { Src = 1 };
                        i++;
                    }
                int prog = RealReuseport.LoadProgram(insns);
                RealReuseport.Attach(fds[0], prog);
                RealReuseport.Close(prog);
                Assert.That(RealReuseport.Deliver(true, fds, FirstSource, Port, []), Is.GreaterThanOrEqualTo(0));
                var v = new byte[8];
                Assert.That(KernelMaps.Lookup(map, BitConverter.GetBytes(0), v), Is.Zero);
                ulong cookie = BitConverter.ToUInt64(v);
                return [Array.FindIndex(fds, fd => RealReuseport.Cookie(fd) == cookie)];
            }
            finally
            {
                RealReuseport.Close([.. fds, map]);
            }
        });
        Compare(kernel, ours, "ctx->sk after listening c, a, b");
    }

    [Test]
    public void A_bound_tcp_socket_that_does_not_listen_is_in_no_group()
    {
        RealReuseport.RequireAvailable();
        // a, b, c bound, only a and b listen: "ret #2" is past the group's two members (the hash picks a or b), and
        // c cannot enter a REUSEPORT_SOCKARRAY (-EINVAL).
        var kernel = Kernel(() =>
        {
            int[] fds = [RealReuseport.NewSocket(true), RealReuseport.NewSocket(true), RealReuseport.NewSocket(true)];
            int array = KernelMaps.CreateMap(20, 4, 8, 4, 0);
            try
            {
                foreach (int fd in fds) RealReuseport.BindLoopback(fd, Port);
                RealReuseport.Listen(fds[0]);
                RealReuseport.Listen(fds[1]);
                Assert.That(RealReuseport.AttachClassic(fds[0], Ret(2)), Is.Zero);
                var got = Enumerable.Range(0, Packets).Select(i => RealReuseport.Deliver(true, fds[..2], (ushort)(FirstSource + i), Port, [])).ToArray();
                int update = -KernelMaps.Update(array, BitConverter.GetBytes(0), BitConverter.GetBytes((ulong)fds[2]));
                return [.. got.Select(r => r is 0 or 1 ? 1 : r), update];
            }
            finally
            {
                RealReuseport.Close([.. fds, array]);
            }
        });
        using var ns = new NetNamespace();
        Sock[] socks = [NewSock(ns, true), NewSock(ns, true), NewSock(ns, true)];
        foreach (var s in socks) s.Bind(Local);
        socks[0].Listen();
        socks[1].Listen();
        Assert.That(socks[2].ReuseportGroup, Is.Null, "joins at listen");
        socks[0].AttachReuseportFilter(new ClassicFilter(Ret(2)));
        using var array = MapFactory.Create(BpfJit.Frontend.Elf.MapType.ReuseportSockArray, 4, 8, 4, 0, "rp");
        var got = Enumerable.Range(0, Packets).Select(i => Array.IndexOf(socks, ns.Lookup(Packet(true, i)).Socket)).ToArray();
        int update = -array.Update(BitConverter.GetBytes(0), BitConverter.GetBytes(socks[2].Cookie));
        int[] ours = [.. got.Select(r => r is 0 or 1 ? 1 : r), update];
        Assert.That(ours, Is.EqualTo(new[] { 1, 1, 1, 1, Errno.EINVAL }), "BpfJit");
        Compare(kernel, ours, "bound, not listening");
    }

    [TestCase(true)]
    [TestCase(false)]
    public void A_program_attached_before_joining_stays_with_a_new_group_and_bars_an_existing_one(bool tcp)
    {
        RealReuseport.RequireAvailable();
        // First: a attaches "ret #1" before it binds (UDP) or listens (TCP), then founds the group with b: every packet
        // reaches b (socks[1]). Then c attaches "ret #0" the same way: a socket with a group of its own conflicts with
        // the group's members (inet_bind_conflict's reuseport_cb_ok, udp_lib_lport_inuse): its bind (UDP) or listen
        // (TCP) fails with -EADDRINUSE, the group is unchanged (still b), and c's own group keeps its program (its detach
        // finds one, the group's too).
        var kernel = Kernel(() =>
        {
            int a = RealReuseport.NewSocket(tcp), b = RealReuseport.NewSocket(tcp), c = RealReuseport.NewSocket(tcp);
            int Join(int fd) => tcp ? RealReuseport.TryListen(fd) : RealReuseport.TryBindLoopback(fd, Port);
            try
            {
                var r = new List<int>();
                if (tcp) RealReuseport.BindLoopback(a, Port);
                r.Add(RealReuseport.AttachClassic(a, Ret(1)));
                r.Add(Join(a));
                RealReuseport.BindLoopback(b, Port);
                if (tcp) RealReuseport.Listen(b);
                r.AddRange(Enumerable.Range(0, Packets).Select(i => RealReuseport.Deliver(tcp, [a, b], (ushort)(FirstSource + i), Port, [1])));
                if (tcp) RealReuseport.BindLoopback(c, Port);
                r.Add(RealReuseport.AttachClassic(c, Ret(0)));
                r.Add(Join(c));
                r.AddRange(Enumerable.Range(0, Packets).Select(i => RealReuseport.Deliver(tcp, [a, b], (ushort)(FirstSource + 10 + i), Port, [1])));
                r.Add(RealReuseport.SetSocketOption(a, SoDetachReuseportBpf, 0));
                r.Add(RealReuseport.SetSocketOption(c, SoDetachReuseportBpf, 0));
                r.Add(RealReuseport.SetSocketOption(c, SoDetachReuseportBpf, 0));
                return [.. r];
            }
            finally
            {
                RealReuseport.Close(a, b, c);
            }
        });
        using var ns = new NetNamespace();
        Sock sa = NewSock(ns, tcp), sb = NewSock(ns, tcp), sc = NewSock(ns, tcp);
        int Join(Sock s) => Errno_(() =>
        {
            if (tcp) s.Listen();
            else s.Bind(Local);
        });
        var ours = new List<int>();
        if (tcp) sa.Bind(Local);
        ours.Add(Errno_(() => sa.AttachReuseportFilter(new ClassicFilter(Ret(1)))));
        ours.Add(Join(sa));
        sb.Bind(Local);
        if (tcp) sb.Listen();
        Sock[] ab = [sa, sb];
        ours.AddRange(Enumerable.Range(0, Packets).Select(i => Array.IndexOf(ab, ns.Lookup(Packet(tcp, i)).Socket)));
        if (tcp) sc.Bind(Local);
        ours.Add(Errno_(() => sc.AttachReuseportFilter(new ClassicFilter(Ret(0)))));
        ours.Add(Join(sc));
        ours.AddRange(Enumerable.Range(0, Packets).Select(i => Array.IndexOf(ab, ns.Lookup(Packet(tcp, 10 + i)).Socket)));
        ours.Add(Errno_(sa.DetachReuseportProgram));
        ours.Add(Errno_(sc.DetachReuseportProgram));
        ours.Add(Errno_(sc.DetachReuseportProgram));
        Assert.That(ours, Is.EqualTo(new[] { 0, 0, 1, 1, 1, 1, 0, Errno.EADDRINUSE, 1, 1, 1, 1, 0, 0, Errno.ENOENT }), "BpfJit");
        Compare(kernel, [.. ours], tcp ? "tcp: attach before listen" : "udp: attach before bind");
    }
}
