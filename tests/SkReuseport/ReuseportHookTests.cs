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
/// A group's SK_REUSEPORT program runs where Linux runs it (<c>reuseport_select_sock</c>): in the regular listener
/// lookup and after an SK_LOOKUP selection without F_NO_REUSEPORT, for TCP and UDP, on both engines.
/// </summary>
[TestFixture]
public class ReuseportHookTests
{
    sealed class World : IDisposable
    {
        public readonly NetNamespace Ns = new();
        public readonly Sock A, B, C;
        public readonly BpfMap Array = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 4, 0, "rp");

        public World(string proto)
        {
            A = Make(proto); B = Make(proto); C = Make(proto);
            A.Name = "A"; B.Name = "B"; C.Name = "C";
            foreach (var (s, k) in new[] { (A, 0u), (B, 1u), (C, 2u) })
                Assert.That(Array.Update(BitConverter.GetBytes(k), BitConverter.GetBytes(s.Cookie)), Is.Zero);
        }

        Sock Make(string proto) => proto == "tcp" ? Tcp(Ns, "127.0.0.1:8080", reuseport: true) : Udp(Ns, "127.0.0.1:8080", reuseport: true);

        public ReuseportGroup Group => A.ReuseportGroup!;

        public string Lookup(string proto, int sourcePort) => Ns.Lookup(Pkt(proto, $"127.0.0.9:{sourcePort}", "127.0.0.1:8080")) switch
        {
            { Outcome: LookupOutcome.Socket, Socket: var s } => s!.Name!,
            { Outcome: LookupOutcome.Refused } => "refused",
            _ => "none",
        };

        public void Dispose()
        {
            Array.Dispose();
            Ns.Dispose();
        }
    }

    // Selects key hash % 3 from the array ("by hash"), key K ("K"), drops ("drop"), or passes without selecting ("pass").
    static string Program(World w, string what) => what switch
    {
        "drop" => "mov %r0, 0\nexit",
        "pass" => "mov %r0, 1\nexit",
        _ => $"""
            ldxw %r2, [%r1+32]
            {(what == "hash" ? "mod %r2, 3" : $"mov %r2, {what}")}
            stxw [%r10-4], %r2
            lddw %r2, 0x{w.Array.Handle:x}
            mov %r3, %r10
            add %r3, -4
            mov %r4, 0
            call 82
            mov %r0, 1
            exit
            """,
    };

    static SkReuseportProgram Load(string engine, string asm) => SkReuseportProgram.Load("prog", Assembler.Assemble(asm), Engines.Get(engine));

    [Test]
    public void ProgramPicksTheMember([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine, [Values("tcp", "udp")] string proto)
    {
        using var w = new World(proto);
        using (var p = Load(engine, Program(w, "1"))) w.Group.Attach(p);
        for (int port = 40000; port < 40020; port++) Assert.That(w.Lookup(proto, port), Is.EqualTo("B"), $"port {port}");
        Assert.That(w.Group.Program!.RunCount, Is.EqualTo(20));
    }

    [Test]
    public void SelectionByTheHashTheProgramSees([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World("udp");
        using (var p = Load(engine, Program(w, "hash"))) w.Group.Attach(p);
        string[] names = ["A", "B", "C"];
        for (int port = 40000; port < 40030; port++)
        {
            uint hash = Pkt("udp", $"127.0.0.9:{port}", "127.0.0.1:8080").Hash();
            Assert.That(w.Lookup("udp", port), Is.EqualTo(names[hash % 3]), $"port {port}");
        }
    }

    [Test]
    public void DropRefusesAndPassFallsBackToTheHash([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine, [Values("tcp", "udp")] string proto)
    {
        using var w = new World(proto);
        var byHash = Enumerable.Range(40000, 10).Select(p => w.Lookup(proto, p)).ToArray();
        using (var drop = Load(engine, Program(w, "drop"))) w.Group.Attach(drop);
        Assert.That(w.Lookup(proto, 40000), Is.EqualTo("refused"));
        using (var pass = Load(engine, Program(w, "pass"))) w.Group.Attach(pass);
        Assert.That(Enumerable.Range(40000, 10).Select(p => w.Lookup(proto, p)), Is.EqualTo(byHash), "SK_PASS without a selection: the hash");
        using (var empty = Load(engine, Program(w, "3"))) w.Group.Attach(empty);
        Assert.That(Enumerable.Range(40000, 10).Select(p => w.Lookup(proto, p)), Is.EqualTo(byHash), "-ENOENT, SK_PASS: the hash");
        w.Group.Detach();
        Assert.That(Enumerable.Range(40000, 10).Select(p => w.Lookup(proto, p)), Is.EqualTo(byHash));
        var e = Assert.Throws<SocketErrorException>(() => w.Group.Detach());
        Assert.That(e!.Errno, Is.EqualTo(Errno.ENOENT), "SO_DETACH_REUSEPORT_BPF without a program");
    }

    [Test]
    public void RunsAfterAnSkLookupSelectionUnlessNoReuseport([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine, [Values(0, 2)] int flags)
    {
        using var w = new World("tcp");
        using (var p = Load(engine, Program(w, "2"))) w.Group.Attach(p);
        // SK_LOOKUP assigns A for packets to port 7007; F_NO_REUSEPORT (2) keeps A, otherwise the group's program picks C.
        using var lookup = SkLookupProgram.Load("assign", Assembler.Assemble($"""
            lddw %r2, {Hex(w.A.Handle)}
            mov %r3, {flags}
            call 124
            mov %r0, 1
            exit
            """), Engines.Get(engine));
        w.Ns.SkLookup.Attach(lookup);
        var r = w.Ns.Lookup(Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:7007"));
        Assert.That(r.Socket, Is.SameAs(flags == 0 ? w.C : w.A));
    }

    [Test]
    public void UdpRunsTheExactGroupBeforeAnSkLookupRedirectTcpDoesNot([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine,
        [Values("tcp", "udp")] string proto, [Values("pass", "drop")] string groupVerdict)
    {
        using var w = new World(proto);
        var other = proto == "tcp" ? Tcp(w.Ns, "127.0.0.1:7000") : Udp(w.Ns, "127.0.0.1:7000");
        other.Name = "D";
        using (var p = Load(engine, Program(w, groupVerdict))) w.Group.Attach(p);
        // SK_LOOKUP redirects every packet to D: the group bound exactly to 127.0.0.1:8080 has already run for UDP
        // (__udp4_lib_lookup) and never runs for TCP (__inet_lookup_listener); the redirect wins over its drop.
        using var lookup = SkLookupProgram.Load("assign", Assembler.Assemble($"""
            lddw %r2, {Hex(other.Handle)}
            mov %r3, 0
            call 124
            mov %r0, 1
            exit
            """), Engines.Get(engine));
        w.Ns.SkLookup.Attach(lookup);
        for (int port = 40000; port < 40005; port++) Assert.That(w.Lookup(proto, port), Is.EqualTo("D"), $"port {port}");
        Assert.That(w.Group.Program!.RunCount, Is.EqualTo(proto == "udp" ? 5 : 0));
    }

    [Test]
    public void UdpExactGroupsDropStandsWhenSkLookupPasses([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World("udp");
        using (var p = Load(engine, Program(w, "drop"))) w.Group.Attach(p);
        using var lookup = SkLookupProgram.Load("pass", Assembler.Assemble("mov %r0, 1\nexit"), Engines.Get(engine));
        w.Ns.SkLookup.Attach(lookup);
        Assert.That(w.Lookup("udp", 40000), Is.EqualTo("refused"));
        Assert.That(w.Group.Program!.RunCount, Is.EqualTo(1));
    }

    [Test]
    public void ConnectedUdpMembers([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var w = new World("udp");
        var connected = Udp(w.Ns, "127.0.0.1:8080", reuseport: true, peer: "127.0.0.9:40000");
        connected.Name = "D";
        using (var p = Load(engine, Program(w, "0"))) w.Group.Attach(p);
        Assert.That(w.Lookup("udp", 40000), Is.EqualTo("D"), "the 4-tuple match wins before any program");
        Assert.That(w.Lookup("udp", 40001), Is.EqualTo("A"));
        w.Group.Detach();
        for (int port = 40001; port < 40040; port++) Assert.That(w.Lookup("udp", port), Is.Not.EqualTo("D"), "the hash skips connected members");
    }

    [Test]
    public void TheGroupHoldsTheProgramUntilItsLastMemberCloses()
    {
        var w = new World("tcp");
        var p = Load("interpreter", Program(w, "1"));
        w.Group.Attach(p);
        p.Dispose();
        Assert.That(p.IsLive, "the group's reference");
        var group = w.Group;
        w.A.Close(); w.B.Close();
        Assert.That(p.IsLive);
        w.C.Close();
        Assert.That(p.IsLive, Is.False, "the group ended with its last member");
        Assert.That(group.Program, Is.Null);
        w.Dispose();
    }
}
