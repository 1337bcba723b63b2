using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// tests/programs/timer_counter.c end to end on both engines: the loader finds the value's bpf_timer, the verifier
/// accepts the program and its timer callback, a lookup through the hook arms the timer, and the callback later
/// counts in the map on the runtime's timer thread.
/// </summary>
[TestFixture]
public class TimerProgramTests
{
    static string ObjectPath => Path.Combine(Paths.RepoRoot, "tests", "programs", "timer_counter.o");

    // struct elem { u64 fired; u64 armed; struct bpf_timer timer; }
    static (ulong Fired, ulong Armed) Elem(BpfMap map)
    {
        var value = new byte[map.ValueSize];
        Assert.That(map.Lookup(new byte[4], value), Is.Zero);
        return (BitConverter.ToUInt64(value, 0), BitConverter.ToUInt64(value, 8));
    }

    [Test]
    public void TheLoaderFindsTheTimerInTheValueType()
    {
        var map = ObjectFile.Load(ObjectPath).Maps["timers"];
        Assert.That((map.TimerOffset, map.SpinLockOffset, map.ValueSize), Is.EqualTo((16, -1, 32u)));
        var info = ObjectVerification.ToMapInfo(map);
        Assert.That((info.TimerOffset, info.HasBtf), Is.EqualTo((16, true)));
    }

    [Test]
    public void ALookupArmsATimerThatLaterCounts([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        var spec = ObjectFile.Load(ObjectPath);
        using var map = MapFactory.Create(ObjectMaps.Definition(spec.Maps["timers"]));
        var helpers = SkLookupHelpers.CreateTable();
        var program = spec.Programs["timer_counter"];
        var facts = new SkLookupProgramVerifier().VerifyWithFacts(program, [map], helpers);
        using var prog = SkLookupProgram.Load(program.Name, ProgramBinder.Bind(program, [map]), Engines.Get(engine), helpers, facts);
        using var ns = new NetNamespace();
        ns.SkLookup.Attach(prog);

        ns.SkLookup.Run(Pkt("tcp", "10.0.0.1:1234", "10.0.0.2:80"));
        Assert.That(Elem(map).Armed, Is.EqualTo(1ul), "the lookup armed the timer");
        var until = DateTime.UtcNow.AddSeconds(10);
        while (Elem(map).Fired == 0 && DateTime.UtcNow < until) Thread.Sleep(1);
        Assert.That(Elem(map).Fired, Is.EqualTo(1ul), "the callback ran after the lookup, on the timer thread");
        Assert.That(prog.FaultCount, Is.Zero);
    }
}
