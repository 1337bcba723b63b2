using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// As Linux lets root, a program may store a pointer into a map value (corpus 19_memory_locks.txt has the
/// kernel-checked shapes). The verifier says so in <see cref="VerifierResult.MayExposeAddresses"/>, and the
/// engines run such a program safely: the map holds the address's bits, a program reads them back as a scalar.
/// </summary>
[TestFixture]
public class AddressExposureTests
{
    const string StoreFramePointer = """
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        ldmap %r1, arr
        call 1
        jeq %r0, 0, out
        stxdw [%r0+0], %r10
        lock add [%r0+8], %r10
        out:
        mov %r0, 1
        exit
        """;

    static CorpusCase Case(string asm) =>
        CorpusCase.Parse("test", "## name: t\n## maps: arr:ARRAY:4:16:1\n## expect: accept\n" + asm).Single();

    static VerifierResult Verify(CorpusCase c) =>
        BpfJit.Verifier.Verifier.Verify(c.Assemble(), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = c.Maps });

    [TestCase(StoreFramePointer, true)]
    [TestCase("mov %r2, 7\nstxdw [%r10-16], %r1\nstxw [%r10-16], %r2\nmov %r0, 1\nexit", true)]
    [TestCase("stxdw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nldxw %r0, [%r2+60]\nmov %r0, 1\nexit", false)]
    [TestCase("mov %r2, 7\nstw [%r10-4], 0\nmov %r0, 1\nexit", false)]
    public void TheVerifierSaysWhenAnAddressBecomesData(string asm, bool exposes)
    {
        var r = Verify(Case(asm));
        Assert.That(r.Accepted, Is.True, r.Log);
        Assert.That(r.MayExposeAddresses, Is.EqualTo(exposes));
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void EachEngineStoresTheAddressBits(string engine)
    {
        var c = Case(StoreFramePointer);
        Assert.That(Verify(c).Accepted, Is.True);
        using var arr = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "arr");
        var program = SkLookupProgram.Load("store", ProgramBinder.Bind(c.Assemble(), [arr]).Code, Engines.Get(engine), BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable());
        using var ctx = new SkLookupContext();
        Assert.That(program.Run(ctx.Address), Is.EqualTo(SkLookupLayout.SkPass));
        var value = new byte[16];
        Assert.That(arr.Lookup(BitConverter.GetBytes(0u), value), Is.Zero);
        ulong stored = BitConverter.ToUInt64(value, 0), added = BitConverter.ToUInt64(value, 8);
        Assert.That(stored, Is.Not.Zero, "the frame pointer's address");
        Assert.That(added, Is.EqualTo(stored), "the atomic add of the same pointer into zero");
    }
}
