using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using KernelMaps = BpfJit.Tests.Support.KernelBpf;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// shutdown(2) on TCP listeners and listening again (<see cref="Sock.Shutdown"/>) against the live kernel: each case is
/// one sequence of socket calls, map updates and connections on 127.0.0.1:9500, run in a fresh network namespace with
/// real sockets and on BpfJit (both engines where a program is attached); the errnos and the listener that accepts each
/// connection (or -1: refused or reset) must be the same.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportShutdownOracleTests
{
    const ushort Port = 9500, FirstSource = 45000;
    const int ShutRd = 0, ShutWr = 1, ShutRdWr = 2;
    const int Enotconn = 107, Einval = 22, Eaddrinuse = 98, Enoent = 2, Eopnotsupp = 95;
    const long SocketsMarker = 0x7ead0002;

    /// <summary>The operations a case runs, on the kernel's sockets or on BpfJit's; results are 0 or a positive errno.</summary>
    public interface IWorld
    {
        int NewTcp(bool reuseport = true);
        int NewUdp();
        int Bind(int s, ushort port = Port);
        int Listen(int s);
        int Shutdown(int s, int how);
        int ConnectUdp(int s);
        ushort LocalPort(int s);
        /// <summary>A connection from 127.0.0.1:<paramref name="sourcePort"/> to the port: the socket that accepts it, or -1.</summary>
        int Deliver(ushort sourcePort);
        /// <summary>Attaches a program (assembler text; the REUSEPORT_SOCKARRAY as <see cref="SocketsMarker"/>) to <paramref name="s"/>'s group.</summary>
        void Attach(int s, string program, bool forMigrate);
        int ArrayUpdate(uint key, int s);
        int ArrayLookup(uint key);
        int SockMapUpdate(uint key, int s);
        int SockMapLookup(uint key);
        void MigrateReq(bool on);
        /// <summary>Clients that complete their handshake and wait in a listener's accept queue.</summary>
        void QueueClients(params ushort[] sourcePorts);
        /// <summary>Shuts <paramref name="s"/> down with the queued clients: per client, the socket now queueing it, or -1.</summary>
        int[] ShutdownQueued(int s, int how);
    }

    public sealed record Case(string Name, Func<IWorld, IEnumerable<int>> Run, bool UsesProgram = false)
    {
        public override string ToString() => Name;
    }

    // New connections go to key 0; migrating ones run the body ("select" takes the key in r1).
    static string MigrateProgram(string migrating) => $"""
        mov %r6, %r1
        ldxdw %r9, [%r6+48]
        jne %r9, 0, migrating
        mov %r1, 0
        {ReuseportMembers.SelectTail(SocketsMarker.ToString())}
        migrating:
        {migrating}
        """;

    static IEnumerable<int> Relisten(IWorld w, bool migrateReq, bool forMigrate)
    {
        w.MigrateReq(migrateReq);
        int a = w.NewTcp(), b = w.NewTcp();
        yield return w.Bind(a);
        yield return w.Listen(a);
        yield return w.Bind(b);
        yield return w.Listen(b);
        w.Attach(a, "mov %r0, 0\nexit", forMigrate);
        yield return w.Deliver(FirstSource);            // the group's program drops
        yield return w.Shutdown(a, ShutRd);
        yield return w.Deliver(FirstSource + 1);        // b's group: still the program
        yield return w.Listen(a);
        yield return w.Deliver(FirstSource + 2);        // a met first, in the same group again: dropped
        yield return w.Shutdown(a, ShutRdWr);
        yield return w.Shutdown(b, ShutRd);
        yield return w.Deliver(FirstSource + 3);        // no listener
        yield return w.Listen(a);
        yield return w.Deliver(FirstSource + 4);        // a new group, without the program
    }

    static IEnumerable<int> MigrateQueue(IWorld w, string migrating)
    {
        int a = w.NewTcp(), b = w.NewTcp();
        w.Bind(a);
        w.Listen(a);
        w.Bind(b);
        w.Listen(b);
        yield return w.ArrayUpdate(0, a);
        yield return w.ArrayUpdate(1, b);
        w.Attach(a, MigrateProgram(migrating), forMigrate: true);
        w.QueueClients(FirstSource, FirstSource + 1, FirstSource + 2);
        foreach (int r in w.ShutdownQueued(a, ShutRd)) yield return r;
        yield return w.ArrayUpdate(0, a);               // not hashed: -EINVAL
        yield return w.Listen(a);
        yield return w.ArrayUpdate(0, a);
        yield return w.Deliver(FirstSource + 3);        // key 0: a again
    }

    public static IEnumerable<Case> Cases =>
    [
        new("shut_wr_keeps_a_listener", w =>
        {
            int a = w.NewTcp();
            return [w.Bind(a), w.Listen(a), w.Shutdown(a, ShutWr), w.Deliver(FirstSource)];
        }),
        new("shut_rd_stops_a_listener", w =>
        {
            int a = w.NewTcp(), b = w.NewTcp();
            return [w.Bind(a), w.Listen(a), w.Bind(b), w.Listen(b), w.Shutdown(a, ShutRd),
                w.Deliver(FirstSource), w.Deliver(FirstSource + 1), w.Deliver(FirstSource + 2),
                w.Shutdown(b, ShutRdWr), w.Deliver(FirstSource + 3), w.Shutdown(a, ShutRd)];
        }),
        new("not_connected_and_bad_how", w =>
        {
            int t = w.NewTcp(), u = w.NewUdp(), v = w.NewUdp();
            return [w.Shutdown(t, 3), w.Shutdown(t, ShutRd), w.Bind(t), w.Shutdown(t, ShutRdWr),
                w.Shutdown(u, ShutRd), w.Bind(u), w.Shutdown(u, ShutWr), w.ConnectUdp(v), w.Shutdown(v, ShutRdWr)];
        }),
        new("relisten_joins_the_group_again", w => Relisten(w, migrateReq: false, forMigrate: false), UsesProgram: true),
        new("relisten_from_the_closed_section_tcp_migrate_req", w => Relisten(w, migrateReq: true, forMigrate: false), UsesProgram: true),
        new("relisten_from_the_closed_section_migrate_program", w => Relisten(w, migrateReq: false, forMigrate: true), UsesProgram: true),
        new("the_maps_drop_a_shut_down_listener", w =>
        {
            int a = w.NewTcp(), b = w.NewTcp();
            return [w.Bind(a), w.Listen(a), w.Bind(b), w.Listen(b), w.ArrayUpdate(0, a), w.SockMapUpdate(0, b),
                w.Shutdown(a, ShutRd), w.Shutdown(b, ShutRdWr), w.ArrayLookup(0), w.SockMapLookup(0),
                w.ArrayUpdate(0, a), w.SockMapUpdate(0, b), w.Listen(a), w.Listen(b),
                w.ArrayUpdate(0, a), w.SockMapUpdate(0, b), w.ArrayLookup(0), w.SockMapLookup(0)];
        }),
        new("a_bound_port_stays_an_autobound_one_goes", w =>
        {
            int a = w.NewTcp(reuseport: false), b = w.NewTcp(reuseport: false);
            int bound = w.Bind(a), listened = w.Listen(a), shut = w.Shutdown(a, ShutRd);
            int taken = w.Bind(b);
            int again = w.Listen(a), delivered = w.Deliver(FirstSource);
            int c = w.NewTcp(reuseport: false), d = w.NewTcp(reuseport: false);
            int autoListen = w.Listen(c);
            ushort port = w.LocalPort(c);
            int autoShut = w.Shutdown(c, ShutRd);
            int freed = w.Bind(d, port);
            return [bound, listened, shut, taken, again, delivered, autoListen, autoShut, freed];
        }),
        new("shutdown_migrates_the_accept_queue", w => MigrateQueue(w, "mov %r1, 1\nja select"), UsesProgram: true),
        new("shutdown_resets_the_accept_queue_on_a_drop", w => MigrateQueue(w, "mov %r0, 0\nexit"), UsesProgram: true),
    ];

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheKernel(Case c)
    {
        RealReuseport.RequireAvailable();
        int[] kernel = RealReuseport.InFreshNamespace(() =>
        {
            using var w = new KernelWorld();
            return c.Run(w).ToArray();
        });
        TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
        foreach (var engine in c.UsesProgram ? Engines.Names : Engines.Names.Take(1))
        {
            int[] ours;
            using (var w = new BpfJitWorld(engine)) ours = c.Run(w).ToArray();
            if (!KernelOracle.Agrees(ours.SequenceEqual(kernel),
                () => $"{c.Name} on {engine}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]"))
                return;
        }
    }

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    sealed class KernelWorld : IWorld, IDisposable
    {
        readonly List<int> _fds = [], _clients = [];
        readonly HashSet<int> _listening = [];
        readonly List<ushort> _queued = [];
        readonly int _array = KernelMaps.CreateMap(20, 4, 8, 4, 0), _sockMap = KernelMaps.CreateMap(15, 4, 8, 4, 0);

        public int NewTcp(bool reuseport = true)
        {
            _fds.Add(RealReuseport.NewSocket(true, reuseport));
            return _fds.Count - 1;
        }

        public int NewUdp()
        {
            _fds.Add(RealReuseport.NewSocket(false));
            return _fds.Count - 1;
        }

        public int Bind(int s, ushort port = Port) => RealReuseport.TryBindLoopback(_fds[s], port);

        public int Listen(int s)
        {
            int r = RealReuseport.TryListen(_fds[s]);
            if (r == 0) _listening.Add(s);
            return r;
        }

        public int Shutdown(int s, int how)
        {
            int r = RealReuseport.Shutdown(_fds[s], how);
            if (r == 0 && how != ShutWr) _listening.Remove(s);
            return r;
        }

        public int ConnectUdp(int s)
        {
            RealReuseport.ConnectTo(_fds[s], Port + 1);
            return 0;
        }

        public ushort LocalPort(int s) => RealReuseport.LocalPort(_fds[s]);

        public int Deliver(ushort sourcePort)
        {
            var order = _listening.Order().ToArray();
            int i = RealReuseport.Deliver(true, [.. order.Select(s => _fds[s])], sourcePort, Port, []);
            return i < 0 ? -1 : order[i];
        }

        public void Attach(int s, string program, bool forMigrate)
        {
            var insns = RealReuseport.BindMaps(Assembler.Assemble(program), (SocketsMarker, _array));
            int prog = RealReuseport.LoadProgram(insns, forMigrate ? 40u : 39u);
            try
            {
                RealReuseport.Attach(_fds[s], prog);
            }
            finally
            {
                RealReuseport.Close(prog);
            }
        }

        public int ArrayUpdate(uint key, int s) => -KernelMaps.Update(_array, Key(key), BitConverter.GetBytes((ulong)_fds[s]));

        public int ArrayLookup(uint key) => -KernelMaps.Lookup(_array, Key(key), new byte[8]);

        public int SockMapUpdate(uint key, int s) => -KernelMaps.Update(_sockMap, Key(key), BitConverter.GetBytes((ulong)_fds[s]));

        public int SockMapLookup(uint key) => -KernelMaps.Lookup(_sockMap, Key(key), new byte[8]);

        public void MigrateReq(bool on) => RealReuseport.Sysctl("net.ipv4.tcp_migrate_req", on ? "1" : "0");

        public void QueueClients(params ushort[] sourcePorts)
        {
            foreach (var p in sourcePorts)
            {
                _clients.Add(RealReuseport.Client(p, Port));
                _queued.Add(p);
            }
        }

        public int[] ShutdownQueued(int s, int how)
        {
            Assert.That(Shutdown(s, how), Is.Zero);
            var outcomes = Enumerable.Repeat(-1, _queued.Count).ToArray();
            foreach (int l in _listening)
                foreach (ushort peer in RealReuseport.AcceptAll(_fds[l]))
                    if (_queued.IndexOf(peer) is int i and >= 0) outcomes[i] = l;
            _queued.Clear();
            return outcomes;
        }

        public void Dispose()
        {
            RealReuseport.Close([.. _clients, .. _fds, _array, _sockMap]);
        }
    }

    sealed class BpfJitWorld(string engine) : IWorld, IDisposable
    {
        static readonly InetEndPoint Loopback = new(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
        readonly NetNamespace _ns = new();
        readonly List<Sock> _socks = [];
        readonly List<MigratingRequest> _queued = [];
        readonly BpfMap _array = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 4, 0, "array"),
            _sockMap = MapFactory.Create(MapType.SockMap, 4, 8, 4, 0, "sockmap");

        static int Errno(Action action)
        {
            try
            {
                action();
                return 0;
            }
            catch (SocketErrorException e)
            {
                return e.Errno;
            }
        }

        int New(SocketProtocol protocol, bool reuseport)
        {
            var s = _ns.Sockets.Create(SocketFamily.Inet, protocol);
            s.ReusePort = reuseport;
            _socks.Add(s);
            return _socks.Count - 1;
        }

        public int NewTcp(bool reuseport = true) => New(SocketProtocol.Tcp, reuseport);

        public int NewUdp() => New(SocketProtocol.Udp, true);

        public int Bind(int s, ushort port = Port) => Errno(() => _socks[s].Bind(Loopback with { Port = port }));

        public int Listen(int s) => Errno(_socks[s].Listen);

        public int Shutdown(int s, int how) => Errno(() => _socks[s].Shutdown((ShutdownHow)how));

        public int ConnectUdp(int s) => Errno(() => _socks[s].Connect(Loopback with { Port = Port + 1 }));

        public ushort LocalPort(int s) => _socks[s].Local?.Port ?? 0;

        public int Deliver(ushort sourcePort)
        {
            var r = _ns.Lookup(new Packet(SocketProtocol.Tcp, Loopback with { Port = sourcePort }, Loopback));
            return r.Outcome == LookupOutcome.Socket ? _socks.IndexOf(r.Socket!) : -1;
        }

        public void Attach(int s, string program, bool forMigrate)
        {
            var text = program.Replace(SocketsMarker.ToString(), $"0x{(long)_array.Handle:x}");
            using var p = SkReuseportProgram.Load("shutdown", Assembler.Assemble(text), Engines.Get(engine),
                expectedAttachType: forMigrate ? AttachType.SkReuseportSelectOrMigrate : AttachType.SkReuseportSelect);
            _socks[s].ReuseportGroup!.Attach(p);
        }

        public int ArrayUpdate(uint key, int s) => -_array.Update(Key(key), BitConverter.GetBytes(_socks[s].Cookie));

        public int ArrayLookup(uint key) => -_array.Lookup(Key(key), new byte[8]);

        public int SockMapUpdate(uint key, int s) => -_sockMap.Update(Key(key), BitConverter.GetBytes(_socks[s].Cookie));

        public int SockMapLookup(uint key) => -_sockMap.Lookup(Key(key), new byte[8]);

        public void MigrateReq(bool on) => _ns.Sockets.TcpMigrateReq = on;

        public void QueueClients(params ushort[] sourcePorts)
        {
            foreach (var p in sourcePorts) _queued.Add(new MigratingRequest(Loopback, Loopback with { Port = p }, Hash: 0));
        }

        public int[] ShutdownQueued(int s, int how)
        {
            var targets = _socks[s].Shutdown((ShutdownHow)how, _queued);
            _queued.Clear();
            return [.. targets.Select(t => t == null ? -1 : _socks.IndexOf(t))];
        }

        public void Dispose()
        {
            _array.Dispose();
            _sockMap.Dispose();
            _ns.Dispose();
        }
    }
}
