using BtfKind = BpfJit.Frontend.Btf.BtfKind;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// The BTF key type of a TASK_STORAGE or CGRP_STORAGE map (tests/Maps/objects/storage_keys.c): the kernel's
/// bpf_local_storage_map_check_btf takes only a 32-bit int (typedefs and modifiers resolved); a 4-byte struct, enum,
/// char array or float is EINVAL, and a long fails earlier on its key_size. BpfJit refuses the same maps with the same
/// errno, and the live kernel, given the object's BTF, agrees map by map.
/// </summary>
[TestFixture]
public class LocalStorageBtfKeyTests
{
    static readonly string ObjectPath = Path.Combine(Paths.RepoRoot, "tests", "Maps", "objects", "storage_keys.o");

    /// <summary>Each map of the object and the errno the kernel gives it (0: created), recorded on Linux 6.18.</summary>
    static readonly (string Map, int Errno)[] Expected =
    [
        ("task_int", 0), ("task_u32", 0), ("task_typedef", 0), ("task_const", 0), ("task_long", Errno.EINVAL), ("task_struct", Errno.EINVAL),
        ("task_enum", Errno.EINVAL), ("task_chars", Errno.EINVAL), ("task_float", Errno.EINVAL), ("cgrp_int", 0), ("cgrp_struct", Errno.EINVAL),
        ("cgrp_short", Errno.EINVAL),
    ];

    static IEnumerable<TestCaseData> Cases() => Expected.Select(e => new TestCaseData(e.Map, e.Errno).SetName($"{{m}}({e.Map})"));

    static MapSpec Spec(string name) => ObjectFile.Load(ObjectPath).Maps[name];

    /// <summary>BpfJit creates the maps with an int key and refuses the others with EINVAL, naming the map and its key type.</summary>
    [TestCaseSource(nameof(Cases))]
    public void BpfJitAnswers(string map, int errno)
    {
        var spec = Spec(map);
        if (errno == 0)
        {
            using var created = MapFactory.Create(ObjectMaps.Definition(spec));
            Assert.That(spec.BtfKey!.IsInt32, Is.True);
            return;
        }
        var e = Assert.Throws<MapCreateException>(() => MapFactory.Validate(ObjectMaps.Definition(spec)))!;
        Assert.That(e.Errno, Is.EqualTo(errno));
        Assert.That(e.Message, Does.StartWith($"map {map} ("));
        if (spec.KeySize == 4) Assert.That(e.Message, Does.Contain($"BTF key type {spec.BtfKey!.Name}"));
    }

    /// <summary>A key type's name and kind as the message gives them.</summary>
    [Test]
    public void TheKeyTypeIsNamedAsCSpellsIt()
    {
        Assert.That(Spec("task_struct").BtfKey, Is.EqualTo(new MapKeyBtf(BtfKind.Struct, "struct four", 0, 0)));
        Assert.That(Spec("task_enum").BtfKey!.ToString(), Is.EqualTo("enum colour (ENUM)"));
        Assert.That(Spec("task_typedef").BtfKey!.ToString(), Is.EqualTo("unsigned int (32 bits at bit 0)"));
    }

    /// <summary>The live kernel, creating each map with the object's BTF and its key and value type ids, gives the recorded errno.</summary>
    [TestCaseSource(nameof(Cases))]
    [Category(KernelOracle.Category)]
    public void KernelAgrees(string map, int errno)
    {
        KernelBpf.RequireAvailable();
        var spec = Spec(map);
        var elf = ElfFile.Parse(File.ReadAllBytes(ObjectPath), "storage_keys");
        int btf = KernelBtf.LoadObjectBtf(elf.Data(elf.FindSection(".BTF")!));
        try
        {
            int fd = BpfJit.Baselines.KernelBtf.CreateMapWithBtf((uint)spec.Type, (int)spec.KeySize, (int)spec.ValueSize, (int)spec.MaxEntries, spec.Flags,
                btf, spec.BtfKeyTypeId, spec.BtfValueTypeId);
            if (fd >= 0) KernelBpf.Close(fd);
            int got = fd >= 0 ? 0 : -fd;
            if (got != errno) KernelOracle.Differs(KernelOracle.RecordedRelease, $"map {map}: the kernel gives errno {got}, recorded {errno}");
        }
        finally
        {
            KernelBpf.Close(btf);
        }
    }
}
