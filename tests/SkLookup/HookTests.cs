using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkLookup;

/// <summary>Links and the run-array aggregation of spec 5.1-5.2, through every engine.</summary>
[TestFixture]
public class HookTests
{
    sealed class World
    {
        public readonly NetNamespace Ns = new();
        public readonly Sock A, B, Regular, Udp;

        public World()
        {
            A = Tcp(Ns, "127.0.0.2:8008");
            B = Tcp(Ns, "127.0.0.3:8008");
            Regular = Tcp(Ns, "127.0.0.1:7007");
            Udp = SkTestSupport.Udp(Ns, "127.0.0.4:8008");
            A.Name = "A"; B.Name = "B"; Regular.Name = "R"; Udp.Name = "U";
        }

        public Sock Named(string n) => n switch { "A" => A, "B" => B, "U" => Udp, _ => throw new ArgumentException(n) };
    }

    // A program spelled "sel A pass", "replace B pass", "clear pass", "sel U pass", "pass", "drop", "sel A ret2".
    static string Asm(World w, string spec)
    {
        var words = spec.Split(' ');
        string ret = words[^1] switch { "pass" => "1", "drop" => "0", "ret2" => "2", var x => throw new ArgumentException(x) };
        if (words.Length == 1) return $"mov %r0, {ret}\nexit";
        nint sk = words[0] == "clear" ? 0 : w.Named(words[1]).Handle;
        int flags = words[0] is "replace" or "clear" ? 1 : 0;
        return $"lddw %r2, {Hex(sk)}\nmov %r3, {flags}\ncall 124\nmov %r0, {ret}\nexit";
    }

    // programs in attach order -> expected lookup answer for tcp 127.0.0.9:1000 -> 127.0.0.1:7007
    static readonly (string[] Programs, string Expect)[] s_aggregation =
    [
        (["pass"], "R"),                                  // PASS without selection: regular lookup
        (["drop"], "refused"),
        (["sel A pass"], "A"),
        (["sel A drop"], "refused"),                      // a selection with DROP is thrown away
        (["sel A drop", "pass"], "refused"),
        (["sel A drop", "sel B pass"], "B"),
        (["sel A pass", "sel B pass"], "A"),              // -EEXIST: the earlier selection stays
        (["sel A pass", "replace B pass"], "B"),          // F_REPLACE wins
        (["sel A pass", "clear pass"], "A"),              // clearing does not undo a kept selection
        (["sel A pass", "drop"], "A"),                    // any selection beats any drop
        (["drop", "sel A pass"], "A"),
        (["drop", "drop"], "refused"),
        (["pass", "drop"], "refused"),
        (["drop", "pass"], "refused"),
        (["pass", "pass"], "R"),
        (["sel U pass"], "R"),                            // -EPROTOTYPE, PASS: regular lookup
        (["sel A ret2"], "R"),                            // neither PASS nor DROP: not kept, not a drop
        (["sel A pass", "sel A pass", "sel A pass"], "A"),
    ];

    static IEnumerable<TestCaseData> AggregationCases()
    {
        foreach (var engine in Engines.Names)
            foreach (var (programs, expect) in s_aggregation)
                yield return new TestCaseData(engine, programs, expect).SetName($"runarray[{engine}] {string.Join(" + ", programs)} -> {expect}");
    }

    [TestCaseSource(nameof(AggregationCases))]
    public void Aggregation(string engine, string[] programs, string expect)
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var w = new World();
        var loaded = programs.Select(p => Load(engine, Asm(w, p), p)).ToArray();
        foreach (var p in loaded) w.Ns.SkLookup.Attach(p);
        var r = w.Ns.Lookup(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        Assert.That(r.Outcome == LookupOutcome.Refused ? "refused" : r.Socket?.Name ?? "none", Is.EqualTo(expect));
        Assert.That(r.ProgramsRan);
        Assert.That(loaded.All(p => p.RunCount >= 1), "every program runs; nothing short-circuits");
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void LaterProgramSeesEarlierSelection(string engine)
    {
        var w = new World();
        w.Ns.SkLookup.Attach(Load(engine, Asm(w, "sel A pass")));
        // Returns PASS only if ctx->sk is A.
        w.Ns.SkLookup.Attach(Load(engine, $"ldxdw %r2, [%r1+0]\nlddw %r3, {Hex(w.A.Handle)}\nmov %r0, 0\njne %r2, %r3, out\nmov %r0, 1\nout:\nexit"));
        w.Ns.SkLookup.Attach(Load(engine, Asm(w, "drop")));
        var r = w.Ns.Lookup(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        Assert.That(r.Socket, Is.SameAs(w.A));
    }

    [Test]
    public void SixtyFifthLinkIsE2BIG()
    {
        var w = new World();
        var pass = Load("interpreter", "mov %r0, 1\nexit");
        for (int i = 0; i < SkLookupHook.MaxLinks; i++) w.Ns.SkLookup.Attach(pass);
        var e = Assert.Throws<SocketErrorException>(() => w.Ns.SkLookup.Attach(pass));
        Assert.That(e!.Errno, Is.EqualTo(Errno.E2BIG));
        Assert.That(w.Ns.SkLookup.Query(), Has.Count.EqualTo(64));
        w.Ns.SkLookup.Links[10].Detach();
        Assert.DoesNotThrow(() => w.Ns.SkLookup.Attach(pass));
    }

    [Test]
    public void QueryDetachAndUpdate()
    {
        var w = new World();
        var pass = Load("interpreter", "mov %r0, 1\nexit", "lookup_pass");
        var drop = Load("interpreter", "mov %r0, 0\nexit", "lookup_drop");
        var l0 = w.Ns.SkLookup.Attach(pass);
        var l1 = w.Ns.SkLookup.Attach(pass);
        var l2 = w.Ns.SkLookup.Attach(drop);
        Assert.That(w.Ns.SkLookup.Query(), Is.EqualTo(new[] { pass.Id, pass.Id, drop.Id }));
        Assert.That(new[] { l0, l1, l2 }.All(l => l.NetnsInode == w.Ns.Inode && l.NetnsInode != 0));
        var packet = Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007");
        Assert.That(w.Ns.Lookup(packet).Outcome, Is.EqualTo(LookupOutcome.Refused));
        l0.Detach();
        Assert.That((l0.IsAttached, l0.NetnsInode, l0.Program), Is.EqualTo((false, 0UL, pass)), "prog still reported, netns_ino 0");
        Assert.That(w.Ns.SkLookup.Query(), Is.EqualTo(new[] { pass.Id, drop.Id }));
        l2.Update(pass);
        Assert.That(w.Ns.SkLookup.Query(), Is.EqualTo(new[] { pass.Id, pass.Id }), "update keeps the link's place");
        Assert.That(w.Ns.Lookup(packet).Socket, Is.SameAs(w.Regular));
        var e = Assert.Throws<SocketErrorException>(() => l0.Update(drop));
        Assert.That(e!.Errno, Is.EqualTo(Errno.ENOLINK));
        l1.Detach();
        l2.Detach();
        var r = w.Ns.Lookup(packet);
        Assert.That((r.Socket, r.ProgramsRan), Is.EqualTo((w.Regular, false)), "no links: the hook is skipped");
    }
}
