using BpfJit.Frontend;
using BpfJit.Verifier;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// Loads from a frozen, program-read-only single-entry array (.rodata) at a constant offset are known
/// constants, as in the kernel: a program may return a `const volatile` setting directly.
/// </summary>
public class FrozenRodataTests
{
    // r0 = *(u32 *)(rodata + 4); exit
    static readonly Instruction[] s_program =
    [
        new(Op.LdImm64, 1, (byte)Ld64Source.MapIdxValue, 0, 0), new(0, 0, 0, 0, 4),
        Ins.Load(MemSize.W, 0, 1, 0),
        Ins.Exit(),
    ];

    static MapInfo Rodata(uint verdict, bool frozen)
    {
        var value = new byte[8];
        BitConverter.GetBytes(verdict).CopyTo(value, 4);
        return new MapInfo(".rodata", MapType.Array, 4, 8, 1, 0x80, IsReadOnly: true, FrozenValue: frozen ? value : null);
    }

    static VerifierResult Verify(MapInfo map) =>
        BpfJit.Verifier.Verifier.Verify(s_program, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = [map] });

    [Test]
    public void AFrozenConstantInRangeIsAccepted() => Assert.That(Verify(Rodata(1, frozen: true)).Accepted, Is.True);

    [Test]
    public void AFrozenConstantOutOfRangeIsRejectedWithItsValue()
    {
        var r = Verify(Rodata(7, frozen: true));
        Assert.That(r.Accepted, Is.False);
        Assert.That(r.Log, Does.Contain("smin=7 smax=7").And.Contain("should have been in [0, 1]"));
    }

    [Test]
    public void WithoutFreezingTheValueIsUnknown()
    {
        var r = Verify(Rodata(1, frozen: false));
        Assert.That(r.Accepted, Is.False);
        Assert.That(r.Log, Does.Contain("should have been in [0, 1]"));
    }
}
