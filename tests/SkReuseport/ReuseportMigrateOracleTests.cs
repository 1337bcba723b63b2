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
/// TCP request migration (<c>inet_csk_listen_stop</c> → <c>reuseport_migrate_sock</c>) against the live kernel, as the
/// kernel's migrate_reuseport selftest drives it: three listeners on 127.0.0.1:9000, a program that sends every new
/// connection to listener 0 and records each connection's hash, clients connected (queued on listener 0), then listener
/// 0 closes; each connection ends on listener 1 or 2, or is reset. BpfJit closes its listener 0 with the same
/// connections (<see cref="Sock.CloseListener(IReadOnlyList{MigratingRequest})"/>, their hashes the kernel's) on both engines.
/// </summary>
[TestFixture]
[Category(KernelOracle.Category)]
public class ReuseportMigrateOracleTests
{
    const ushort Port = 9000, FirstSource = 41000;
    const int Listeners = 3, Clients = 10;
    const long HashesMarker = 0x7ead0001, SocketsMarker = 0x7ead0002;

    /// <param name="Name">The case.</param>
    /// <param name="Migrate">The program's answer when migrating_sk is set (after the hash is in r8).</param>
    /// <param name="ForMigrate">Loaded for BPF_SK_REUSEPORT_SELECT_OR_MIGRATE (else BPF_SK_REUSEPORT_SELECT).</param>
    /// <param name="MigrateReq">net.ipv4.tcp_migrate_req.</param>
    public sealed record Case(string Name, string Migrate, bool ForMigrate, bool MigrateReq)
    {
        public override string ToString() => Name;
    }

    // r6 = ctx, r8 = hash; a new connection records hashes[sport & 63] = hash and goes to key 0; a migrating one runs the case.
    static readonly string Prelude = $"""
        mov %r6, %r1
        ldxw %r8, [%r6+32]
        ldxdw %r9, [%r6+48]
        jne %r9, 0, migrating
        ldxdw %r2, [%r6+0]
        ldxdw %r3, [%r6+8]
        mov %r4, %r2
        add %r4, 2
        mov %r7, 0
        jgt %r4, %r3, record
        ldxh %r7, [%r2+0]
        be16 %r7
        record:
        and %r7, 63
        stxw [%r10-4], %r7
        stxw [%r10-8], %r8
        lddw %r1, {HashesMarker}
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call 2
        mov %r1, 0
        select:
        stxw [%r10-12], %r1
        mov %r1, %r6
        lddw %r2, {SocketsMarker}
        mov %r3, %r10
        add %r3, -12
        mov %r4, 0
        call 82
        mov %r0, 1
        exit
        migrating:
        """;

    public static IEnumerable<Case> Cases =>
    [
        new("migrate_select_by_hash", "mov %r1, %r8\nmod %r1, 2\nadd %r1, 1\nja select", ForMigrate: true, MigrateReq: false),
        new("migrate_select_fixed", "mov %r1, 2\nja select", ForMigrate: true, MigrateReq: false),
        new("migrate_drop", "mov %r0, 0\nexit", ForMigrate: true, MigrateReq: false),
        new("migrate_pass_falls_back_to_hash", "mov %r0, 1\nexit", ForMigrate: true, MigrateReq: false),
        // The closing listener already left the array: -ENOENT, then SK_PASS without a selection.
        new("migrate_select_the_closing_listener", "mov %r1, 0\nja select", ForMigrate: true, MigrateReq: false),
        new("select_program_with_tcp_migrate_req", "mov %r0, 0\nexit", ForMigrate: false, MigrateReq: true),
        new("select_program_without_tcp_migrate_req", "mov %r0, 0\nexit", ForMigrate: false, MigrateReq: false),
        new("migrate_drop_with_tcp_migrate_req", "mov %r0, 0\nexit", ForMigrate: true, MigrateReq: true),
    ];

    static string Program(Case c, long hashes, long sockets) =>
        (Prelude + "\n" + c.Migrate).Replace(HashesMarker.ToString(), $"0x{hashes:x}").Replace(SocketsMarker.ToString(), $"0x{sockets:x}");

    static byte[] Key(uint k) => BitConverter.GetBytes(k);

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheKernel(Case c)
    {
        RealReuseport.RequireAvailable();
        var (kernel, hashes) = RunKernel(c);
        TestContext.Out.WriteLine($"kernel [{string.Join(",", kernel)}]");
        foreach (var engine in Engines.Names)
        {
            var ours = RunBpfJit(c, engine, hashes);
            if (!KernelOracle.Agrees(ours.SequenceEqual(kernel),
                () => $"{c.Name} on {engine}: kernel [{string.Join(",", kernel)}], BpfJit [{string.Join(",", ours)}]"))
                return;
        }
    }

    // Per client: the listener (1, 2) whose queue now holds it, or -1 (reset).
    static (int[] Outcomes, uint[] Hashes) RunKernel(Case c) => RealReuseport.InFreshNamespace(() =>
    {
        var fds = new List<int>();
        try
        {
            RealReuseport.Sysctl("net.ipv4.tcp_migrate_req", c.MigrateReq ? "1" : "0");
            var listeners = Enumerable.Range(0, Listeners).Select(_ => RealReuseport.Member(true, Port)).ToArray();
            fds.AddRange(listeners);
            int hashMap = KernelMaps.CreateMap(2, 4, 4, 64, 0), sockets = KernelMaps.CreateMap(20, 4, 8, 4, 0);
            fds.AddRange([hashMap, sockets]);
            for (int i = 0; i < Listeners; i++) Assert.That(KernelMaps.Update(sockets, Key((uint)i), BitConverter.GetBytes((ulong)listeners[i])), Is.Zero);
            var insns = RealReuseport.BindMaps(Assembler.Assemble(Program(c, HashesMarker, SocketsMarker)), (HashesMarker, hashMap), (SocketsMarker, sockets));
            int prog = RealReuseport.LoadProgram(insns, c.ForMigrate ? 40u : 39u);
            fds.Add(prog);
            RealReuseport.Attach(listeners[0], prog);
            var clients = Enumerable.Range(0, Clients).Select(i => RealReuseport.Client((ushort)(FirstSource + i), Port)).ToArray();
            fds.AddRange(clients);
            var hashes = new uint[Clients];
            var value = new byte[4];
            for (int i = 0; i < Clients; i++)
            {
                Assert.That(KernelMaps.Lookup(hashMap, Key((uint)((FirstSource + i) & 63)), value), Is.Zero);
                hashes[i] = BitConverter.ToUInt32(value);
            }
            RealReuseport.Close(listeners[0]);
            fds.Remove(listeners[0]);
            var outcomes = Enumerable.Repeat(-1, Clients).ToArray();
            for (int l = 1; l < Listeners; l++)
                foreach (ushort peer in RealReuseport.AcceptAll(listeners[l]))
                    outcomes[peer - FirstSource] = l;
            return (outcomes, hashes);
        }
        finally
        {
            RealReuseport.Close([.. fds]);
        }
    });

    static int[] RunBpfJit(Case c, string engine, uint[] hashes)
    {
        using var ns = new NetNamespace();
        ns.Sockets.TcpMigrateReq = c.MigrateReq;
        var local = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), Port);
        var listeners = ReuseportMembers.Create(ns, SocketProtocol.Tcp, local, Listeners);
        using var hashMap = MapFactory.Create(MapType.Array, 4, 4, 64, 0, "hashes");
        using var sockets = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 4, 0, "sockets");
        for (int i = 0; i < Listeners; i++) Assert.That(sockets.Update(Key((uint)i), BitConverter.GetBytes(listeners[i].Cookie)), Is.Zero);
        using (var program = SkReuseportProgram.Load(c.Name, Assembler.Assemble(Program(c, (long)hashMap.Handle, (long)sockets.Handle)), Engines.Get(engine),
            expectedAttachType: c.ForMigrate ? AttachType.SkReuseportSelectOrMigrate : AttachType.SkReuseportSelect))
            listeners[0].ReuseportGroup!.Attach(program);
        var requests = Enumerable.Range(0, Clients)
            .Select(i => new MigratingRequest(local, local with { Port = (ushort)(FirstSource + i) }, hashes[i])).ToArray();
        var targets = listeners[0].CloseListener(requests);
        return targets.Select(t => t == null ? -1 : Array.IndexOf(listeners, t)).ToArray();
    }
}
