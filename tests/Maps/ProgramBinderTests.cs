using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>Binding symbolic map references (MAP_IDX, MAP_IDX_VALUE, MAP_FD, MAP_VALUE) to handles and value addresses.</summary>
[TestFixture]
public class ProgramBinderTests
{
    [Test]
    public void BindsEveryFormAndRecordsTheSideTable()
    {
        using var hash = MapFactory.Create(MapType.Hash, 4, 4, 4, 0, "h");
        using var data = (ArrayMap)MapFactory.Create(MapType.Array, 4, 16, 1, 0, ".data");
        var code = Assemble("""
            ldmap %r1, 0
            ldmapvalue %r2, 1, 12
            ldmapfd %r3, 0
            lddw %r4, 0x1122334455667788
            mov %r0, 0
            exit
            """);
        // Turn the plain lddw into MAP_VALUE fd 1, offset 4.
        code[6] = code[6] with { Src = (byte)Ld64Source.MapValue, Imm = 1 };
        code[7] = code[7] with { Imm = 4 };
        var bound = ProgramBinder.Bind(code, [hash, data]);
        Assert.Multiple(() =>
        {
            Assert.That(bound.Code[0].Imm64(bound.Code[1]), Is.EqualTo(hash.Handle));
            Assert.That(bound.Code[2].Imm64(bound.Code[3]), Is.EqualTo(data.Data + 12));
            Assert.That(bound.Code[4].Imm64(bound.Code[5]), Is.EqualTo(hash.Handle));
            Assert.That(bound.Code[6].Imm64(bound.Code[7]), Is.EqualTo(data.Data + 4), "MAP_VALUE takes the value offset from the second slot");
            Assert.That(bound.Code.Where(i => i.IsLdImm64).All(i => i.Src == 0));
            Assert.That(bound.References.Select(r => (r.Slot, r.Map.Name, r.IsValue, r.Offset)),
                Is.EqualTo(new[] { (0, "h", false, 0u), (2, ".data", true, 12u), (4, "h", false, 0u), (6, ".data", true, 4u) }));
            Assert.That(bound.At(2)!.Map, Is.SameAs(data));
            Assert.That(bound.At(8), Is.Null);
            Assert.That(bound.Maps, Is.EquivalentTo(new BpfMap[] { hash, data }));
            Assert.That(code[0].Src, Is.EqualTo((byte)Ld64Source.MapIdx), "the input is not modified");
        });
    }

    static IEnumerable<TestCaseData> Errors()
    {
        yield return new TestCaseData("ldmap %r1, 2\nexit", "map index 2 is out of range").SetName("map index out of range");
        yield return new TestCaseData("ldmapfd %r1, 9\nexit", "fd 9 is not pointing to valid bpf_map").SetName("bad fd");
        yield return new TestCaseData("ldmapvalue %r1, 0, 0\nexit", "has no direct value access").SetName("value of a hash map");
        yield return new TestCaseData("ldmapvalue %r1, 1, 16\nexit", "direct value offset of 16 is not allowed").SetName("value offset past the end");
    }

    [TestCaseSource(nameof(Errors))]
    public void RejectsBadReferences(string source, string message)
    {
        using var hash = MapFactory.Create(MapType.Hash, 4, 4, 4, 0, "h");
        using var data = MapFactory.Create(MapType.Array, 4, 16, 1, 0, ".data");
        var e = Assert.Throws<ProgramBindException>(() => ProgramBinder.Bind(Assemble(source), [hash, data]))!;
        Assert.That(e.Message, Does.Contain(message));
        Assert.That(e.Slot, Is.EqualTo(0));
    }

    [Test]
    public void MultiEntryArraysHaveNoDirectValueAccess()
    {
        using var arr = MapFactory.Create(MapType.Array, 4, 16, 2, 0, "a");
        Assert.Throws<ProgramBindException>(() => ProgramBinder.Bind(Assemble("ldmapvalue %r1, 0, 0\nexit"), [arr]));
    }

    [Test]
    public void EnginesRefuseUnboundMapReferences([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        var e = Assert.Throws<BpfRuntimeException>(() => Engines.Get(engine).Prepare(Assemble("ldmap %r1, 0\nmov %r0, 0\nexit"), KernelHelpers.Table()));
        Assert.That(e!.Message, Does.Contain("not bound"));
    }

    // Global data: a counter in .bss incremented in place, a constant read from .rodata.
    const string GlobalData = """
        ldmapvalue %r1, 0, 8
        ldxdw %r2, [%r1]
        add %r2, 1
        stxdw [%r1], %r2
        ldmapvalue %r3, 1, 4
        ldxw %r0, [%r3]
        add %r0, %r2
        exit
        """;

    [Test]
    public void ProgramsAddressGlobalDataDirectly([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var bss = MapFactory.Create(MapType.Array, 4, 16, 1, 0, ".bss");
        using var rodata = MapFactory.Create(MapType.Array, 4, 8, 1, MapFlags.ReadOnlyProg, ".rodata");
        rodata.Update(U32(0), U64(1000ul << 32));
        var run = Prepare(engine, GlobalData, bss, rodata);
        Assert.That(Run(run), Is.EqualTo(1001ul));
        Assert.That(Run(run), Is.EqualTo(1002ul));
        var value = new byte[16];
        bss.Lookup(U32(0), value);
        Assert.That(BitConverter.ToUInt64(value, 8), Is.EqualTo(2ul), "userspace sees what the program wrote");
    }
}
