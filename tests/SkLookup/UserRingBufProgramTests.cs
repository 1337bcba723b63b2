using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// tests/programs/user_ringbuf_drain.c end to end on both engines: the test produces samples into the USER_RINGBUF
/// map, a lookup through the hook drains them (bpf_user_ringbuf_drain, bpf_dynptr_read) and sums them into an ARRAY.
/// </summary>
[TestFixture]
public class UserRingBufProgramTests
{
    static string ObjectPath => Path.Combine(Paths.RepoRoot, "tests", "programs", "user_ringbuf_drain.o");

    static ulong Total(BpfMap totals, uint key)
    {
        var value = new byte[8];
        Assert.That(totals.Lookup(BitConverter.GetBytes(key), value), Is.Zero);
        return BitConverter.ToUInt64(value);
    }

    [Test]
    public void ALookupDrainsWhatUserspaceProduced([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        var spec = ObjectFile.Load(ObjectPath);
        using var commands = (UserRingBufMap)MapFactory.Create(ObjectMaps.Definition(spec.Maps["commands"]));
        using var totals = MapFactory.Create(ObjectMaps.Definition(spec.Maps["totals"]));
        BpfMap[] maps = spec.Maps.Select(m => m.Name == "commands" ? (BpfMap)commands : totals).ToArray();
        var helpers = SkLookupHelpers.CreateTable();
        var program = spec.Programs["user_ringbuf_drain"];
        var facts = new SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
        using var prog = SkLookupProgram.Load(program.Name, ProgramBinder.Bind(program, maps), Engines.Get(engine), helpers, facts);
        using var ns = new NetNamespace();
        ns.SkLookup.Attach(prog);

        foreach (ulong v in new ulong[] { 10, 20, 12 }) Assert.That(commands.Write(BitConverter.GetBytes(v)), Is.Zero);
        ns.SkLookup.Run(Pkt("udp", "10.0.0.1:1234", "10.0.0.2:53"));
        Assert.That((Total(totals, 0), Total(totals, 1)), Is.EqualTo((3ul, 42ul)), "three samples, summed");
        ns.SkLookup.Run(Pkt("udp", "10.0.0.1:1234", "10.0.0.2:53"));
        Assert.That(Total(totals, 0), Is.EqualTo(3ul), "nothing left to drain");
        Assert.That(prog.FaultCount, Is.Zero);
    }
}
