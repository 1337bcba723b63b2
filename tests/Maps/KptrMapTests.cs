using System.Runtime.InteropServices;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Loader;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Maps;

/// <summary>
/// A map whose value holds kptrs (tests/Loader/objects/kptr_fields.c, value { long x; task_struct __kptr *t;
/// task_struct __kptr_untrusted *u; }): the programs that load and store them run on both engines, and userspace sees the
/// value as the kernel shows it: the kptrs read as 0 and an update does not write them, while the map keeps what a program
/// stored until an update or delete frees it.
/// </summary>
[TestFixture]
public unsafe class KptrMapTests
{
    static string Object => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", "kptr_fields.o");

    const int OffX = 0, OffT = 8, OffU = 16, ValueSize = 24;

    static (CollectionSpec Spec, BpfMap Map) Create()
    {
        var spec = ObjectFile.Load(Object);
        return (spec, MapFactory.Create(ObjectMaps.Definition(spec.Maps["kptrs"])));
    }

    static uint Run(CollectionSpec spec, string name, BpfMap map, string engine)
    {
        var helpers = SkLookupHelpers.CreateTable();
        var program = spec.Programs[name];
        var facts = new SkLookupProgramVerifier().VerifyWithFacts(program, [map], helpers);
        var loaded = SkLookupProgram.Load(name, ProgramBinder.Bind(program, [map]).Code, Engines.Get(engine), helpers, facts);
        using var ctx = new SkLookupContext();
        ctx.Fill(new Packet(SocketProtocol.Tcp, InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.2:40000")),
            InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.1:80")), 1));
        return loaded.Run(ctx.Address);
    }

    /// <summary>The value as a program sees it (the map's own memory).</summary>
    static byte* InMap(BpfMap map, uint key) => (byte*)map.LookupElem((ulong)&key);

    [Test]
    public void TheLoaderFindsTheKptrFields()
    {
        var kptrs = ObjectFile.Load(Object).Maps["kptrs"].Kptrs;
        Assert.That(kptrs, Is.EqualTo(new[] { new KptrField(OffT, KptrKind.Referenced, "task_struct"), new KptrField(OffU, KptrKind.Unreferenced, "task_struct") }));
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void StoredKptrsStayInTheMapAndReadAsZeroFromUserspace(string engine)
    {
        var (spec, map) = Create();
        using var _ = map;
        Assert.That(Run(spec, "store_current", map, engine), Is.EqualTo(SkLookupLayout.SkPass));
        ulong stored = *(ulong*)(InMap(map, 0) + OffU);
        Assert.That(stored, Is.EqualTo(KernelHelpers.GetCurrentTaskBtf(0, 0, 0, 0, 0)), "the program's store is in the map");

        var value = new byte[ValueSize];
        Assert.That(map.Lookup(BitConverter.GetBytes(0), value), Is.EqualTo(0));
        Assert.That(BitConverter.ToInt64(value, OffX), Is.EqualTo(KernelHelpers.CurrentTask.ThreadId()), "x: the pid read through the kptr");
        Assert.That(BitConverter.ToUInt64(value, OffU), Is.EqualTo(0UL), "a kptr reads as 0 from userspace");

        // An update writes x, not the kptrs, and frees what they held (array_map_update_elem's bpf_obj_free_fields).
        var update = new byte[ValueSize];
        BitConverter.GetBytes(7L).CopyTo(update, OffX);
        BitConverter.GetBytes(0x1234_5678UL).CopyTo(update, OffT);
        BitConverter.GetBytes(0x1234_5678UL).CopyTo(update, OffU);
        Assert.That(map.Update(BitConverter.GetBytes(0), update), Is.EqualTo(0));
        Assert.That(*(long*)(InMap(map, 0) + OffX), Is.EqualTo(7));
        Assert.That(*(ulong*)(InMap(map, 0) + OffT), Is.EqualTo(0UL));
        Assert.That(*(ulong*)(InMap(map, 0) + OffU), Is.EqualTo(0UL));
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void LoadsAndNullStoresRunOnEveryEngine(string engine)
    {
        var (spec, map) = Create();
        using var _ = map;
        Assert.That(Run(spec, "load_ref", map, engine), Is.EqualTo(SkLookupLayout.SkPass), "the referenced kptr is NULL");
        Assert.That(Run(spec, "store_current", map, engine), Is.EqualTo(SkLookupLayout.SkPass));
        Assert.That(Run(spec, "copy_into_untrusted", map, engine), Is.EqualTo(SkLookupLayout.SkPass));
        Assert.That(*(ulong*)(InMap(map, 0) + OffU), Is.EqualTo(0UL), "v->u = w->u = v->t, all NULL");
        Assert.That(Run(spec, "store_current", map, engine), Is.EqualTo(SkLookupLayout.SkPass));
        Assert.That(Run(spec, "store_null_untrusted", map, engine), Is.EqualTo(SkLookupLayout.SkPass));
        Assert.That(*(ulong*)(InMap(map, 1) + OffU), Is.EqualTo(0UL));
    }

    /// <summary>bpf_kptr_xchg, run without the verifier (none passes it in SK_LOOKUP): an atomic exchange of the field.</summary>
    [Test]
    public void KptrXchgExchangesTheField()
    {
        ulong field = 5;
        Assert.That(KernelHelpers.KptrXchg((ulong)&field, 9, 0, 0, 0), Is.EqualTo(5UL));
        Assert.That(field, Is.EqualTo(9UL));
        Assert.That(KernelHelpers.KptrXchg((ulong)&field, 0, 0, 0, 0), Is.EqualTo(9UL));
        Assert.That(field, Is.EqualTo(0UL));
    }

    /// <summary>The runtime refuses kptrs where it cannot keep them apart from the value's other bytes.</summary>
    [Test]
    public void MapCreationChecksTheKptrFields()
    {
        KptrField Ref(int off) => new(off, KptrKind.Referenced, "task_struct");
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Create(new MapDefinition("m", MapType.PerCpuArray, 4, 16, 1, Kptrs: [Ref(8)])));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EOPNOTSUPP));
        e = Assert.Throws<MapCreateException>(() => MapFactory.Create(new MapDefinition("m", MapType.Array, 4, 16, 1, Kptrs: [Ref(4)])));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EINVAL));
        e = Assert.Throws<MapCreateException>(() => MapFactory.Create(new MapDefinition("m", MapType.Array, 4, 16, 1, Kptrs: [Ref(16)])));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EINVAL));
        e = Assert.Throws<MapCreateException>(() => MapFactory.Create(new MapDefinition("m", MapType.Hash, 4, 16, 1, SpinLockOffset: 8, Kptrs: [Ref(8)])));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EINVAL));
        e = Assert.Throws<MapCreateException>(() => MapFactory.Create(new MapDefinition("m", MapType.Hash, 4, 16, 1, MapFlags.ReadOnlyProg, Kptrs: [Ref(8)])));
        Assert.That(e!.Errno, Is.EqualTo(Errno.EACCES));
    }

    /// <summary>An inner map fits a map-in-map only with the template's kptr fields (the kernel's btf_record_equal).</summary>
    [Test]
    public void AnInnerMapFitsOnlyWithTheTemplatesKptrs()
    {
        var kptrs = new[] { new KptrField(OffU, KptrKind.Unreferenced, "task_struct") };
        var plain = new MapDefinition("inner", MapType.Array, 4, ValueSize, 1);
        using var outer = (MapOfMaps)MapFactory.Create(new MapDefinition("outer", MapType.ArrayOfMaps, 4, 4, 1, InnerMap: plain));
        using var withKptr = MapFactory.Create(plain with { Kptrs = kptrs });
        using var without = MapFactory.Create(plain);
        Assert.That(outer.Fits(without), Is.True);
        Assert.That(outer.Fits(withKptr), Is.False);
    }

    /// <summary>A hash map's new element starts with empty kptrs; a replaced one's are gone with it.</summary>
    [Test]
    public void HashUpdatesLeaveKptrsEmpty()
    {
        using var map = MapFactory.Create(new MapDefinition("h", MapType.Hash, 4, ValueSize, 4, Kptrs: [new KptrField(OffU, KptrKind.Unreferenced, "task_struct")]));
        var value = new byte[ValueSize];
        Array.Fill(value, (byte)0xAB);
        Assert.That(map.Update(BitConverter.GetBytes(3), value), Is.EqualTo(0));
        Assert.That(*(ulong*)(InMap(map, 3) + OffU), Is.EqualTo(0UL));
        Assert.That(*(ulong*)(InMap(map, 3) + OffT), Is.EqualTo(0xABABABABABABABABUL));
        *(ulong*)(InMap(map, 3) + OffU) = 42;   // as a program's store would
        var read = new byte[ValueSize];
        Assert.That(map.Lookup(BitConverter.GetBytes(3), read), Is.EqualTo(0));
        Assert.That(BitConverter.ToUInt64(read, OffU), Is.EqualTo(0UL));
        Assert.That(map.Update(BitConverter.GetBytes(3), value), Is.EqualTo(0));
        Assert.That(*(ulong*)(InMap(map, 3) + OffU), Is.EqualTo(0UL), "the replacing element's kptr is empty");
    }

    /// <summary>The live kernel shows a kptr-holding value to userspace the same way: the program's store is not visible, an update does not write it.</summary>
    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelShowsTheValueTheSameWay()
    {
        KernelBpf.RequireAvailable();
        var spec = ObjectFile.Load(Object);
        var m = spec.Maps["kptrs"];
        var elf = ElfFile.Parse(File.ReadAllBytes(Object), "kptr_fields");
        int btf = KernelBtf.LoadObjectBtf(elf.Data(elf.FindSection(".BTF")!));
        int fd = KernelBtf.CreateMapWithBtf((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags, btf, m.BtfKeyTypeId, m.BtfValueTypeId);
        try
        {
            Assert.That(fd, Is.GreaterThanOrEqualTo(0), "BPF_MAP_CREATE");
            var ctx = new byte[72];
            ctx[8] = 2;     // family AF_INET
            ctx[12] = 6;    // protocol TCP
            ctx[60] = 80;   // local port
            var r = KernelBpf.TestRun(spec.Programs["store_current"].Instructions, [fd], ctx);
            Assert.That((r.Errno, r.Retval), Is.EqualTo((0, SkLookupLayout.SkPass)));
            var value = new byte[ValueSize];
            Assert.That(KernelBpf.Lookup(fd, BitConverter.GetBytes(0), value), Is.EqualTo(0));
            Assert.That(BitConverter.ToInt64(value, OffX), Is.Not.EqualTo(0L), "x: the pid read through the kptr");
            Assert.That(BitConverter.ToUInt64(value, OffU), Is.EqualTo(0UL), "a kptr reads as 0 from userspace");
            var update = new byte[ValueSize];
            BitConverter.GetBytes(7L).CopyTo(update, OffX);
            BitConverter.GetBytes(0x1234_5678UL).CopyTo(update, OffU);
            Assert.That(KernelBpf.Update(fd, BitConverter.GetBytes(0), update), Is.EqualTo(0));
            Assert.That(KernelBpf.Lookup(fd, BitConverter.GetBytes(0), value), Is.EqualTo(0));
            Assert.That((BitConverter.ToInt64(value, OffX), BitConverter.ToUInt64(value, OffU)), Is.EqualTo((7L, 0UL)));
        }
        finally
        {
            if (fd >= 0) KernelBpf.Close(fd);
            KernelBpf.Close(btf);
        }
    }
}
