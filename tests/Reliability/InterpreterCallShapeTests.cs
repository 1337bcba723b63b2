using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// The interpreter's quick helper-call paths (docs/reliability.md, "The interpreter": each call site's shape, fixed
/// when the program is prepared, checks its arguments inline) vouch for no more than the full check: a call site that
/// passes another map than last time, a map disposed since, a context pointer that is not the run's context, a NULL
/// or unknown socket, each go to the full check and fault there.
/// </summary>
[TestFixture, NonParallelizable]
public class InterpreterCallShapeTests
{
    // r1 = 0: a lookup in map 0 (16-byte values); otherwise in map 1 (8-byte values). Then reads the value's bytes 8..15.
    const string LookupEitherMap = """
        mov %r6, %r1
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        ldmap %r1, 0
        jeq %r6, 0, lookup
        ldmap %r1, 1
        lookup:
        call 1
        jeq %r0, 0, out
        ldxdw %r0, [%r0+8]
        out:
        exit
        """;

    // The checking engines: the interpreter, and the JIT in checked mode (the same full check at every call).
    static BpfEntry Prepare(string engine, string source, params BpfMap[] maps) =>
        BpfEngines.Checking(engine).Prepare(ProgramBinder.Bind(MapPrograms.Assemble(source), maps).Code, KernelHelpers.Table());

    static ulong RunSk(string engine, string source, SkLookupContext ctx) =>
        BpfEngines.Checking(engine).Prepare(CtxLoadRewriter.Rewrite(Assembler.Assemble(source)), SkLookupHelpers.CreateTable())((ulong)ctx.Address, 0);

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void ACallSiteThatPassesAnotherMapGetsThatMapsValueSize(string engine)
    {
        using var wide = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "wide");
        using var narrow = MapFactory.Create(MapType.Array, 4, 8, 1, 0, "narrow");
        var entry = Prepare(engine, LookupEitherMap, wide, narrow);
        Assert.That(MapPrograms.Run(entry, 0), Is.EqualTo(0UL), "bytes 8..15 of a 16-byte value");
        // The site remembers the wide map; the narrow one's value has no bytes 8..15.
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, 1)) as BpfFaultException;
        Assert.That(e!.Access, Is.EqualTo("load"));
        Assert.That(MapPrograms.Run(entry, 0), Is.EqualTo(0UL), "and back");
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void AMapDisposedSinceTheSitesLastCallFaults(string engine)
    {
        var map = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "gone");
        var entry = Prepare(engine, LookupEitherMap, map, map);
        Assert.That(MapPrograms.Run(entry, 0), Is.EqualTo(0UL));
        map.Dispose();
        MapEpoch.Collect();
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, 0)) as BpfFaultException;
        Assert.That(e!.Message, Does.Contain("argument r1").And.Contain("is not a live map"));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void SkAssignWithAPointerIntoTheContextButNotItsStartFaults(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => RunSk(engine, """
            add %r1, 8
            mov %r2, 0
            mov %r3, 0
            call 124
            exit
            """, ctx));
        Assert.That(e!.Message, Does.Contain("bpf_sk_assign: argument r1").And.Contain("is not the program's context"));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void SkReleaseOfNullFaults(string engine)
    {
        // The kernel's verifier refuses a NULL where bpf_sk_release takes a socket; unverified, it is no socket either,
        // even in a run that has been handed no socket yet (whose known socket is "none", 0).
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => RunSk(engine, """
            mov %r1, 0
            call 86
            mov %r0, 1
            exit
            """, ctx));
        Assert.That(e!.Message, Does.Contain("bpf_sk_release: argument r1 = 0x0 is not a socket"));
    }

    [TestCase("interpreter")]
    [TestCase("jit")]
    public void SkReleaseOfAnAddressThatIsNoSocketFaults(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:7007"));
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => RunSk(engine, """
            call 86
            mov %r0, 1
            exit
            """, ctx));
        Assert.That(e!.Message, Does.Contain("bpf_sk_release: argument r1").And.Contain("is not a socket"));
    }
}
