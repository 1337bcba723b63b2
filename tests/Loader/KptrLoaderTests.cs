using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using KernelBtf = BpfJit.Tests.Support.KernelBtf;

namespace BpfJit.Tests.Loader;

/// <summary>
/// Map values whose kptr fields the kernel refuses at BPF_MAP_CREATE: BpfJit refuses the object with a one-line error naming
/// the map and member, and the live kernel, given the object's BTF, refuses the map with the errno the message names.
/// </summary>
[TestFixture]
public class KptrLoaderTests
{
    static string Path(string name) => System.IO.Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o");

    public static readonly object[][] Cases =
    [
        ["kptr_no_dtor", "map 'no_dtor': member 'sk': struct sock has no destructor kfunc, so it cannot be a referenced kptr (ENOENT)", BpfJit.Runtime.Errno.ENOENT],
    ];

    [TestCaseSource(nameof(Cases))]
    public void BpfJitRefusesTheObject(string name, string message, int errno)
    {
        var e = Assert.Throws<BpfObjectException>(() => ObjectFile.Load(Path(name)));
        Assert.That(e!.Message, Does.EndWith(message));
        Assert.That(e.Message, Does.Not.Contain("\n"));
    }

    /// <summary>
    /// The kernel refuses such a BTF already at BPF_BTF_LOAD (it parses the kptrs of every struct of a program's BTF), with
    /// the errno the message names; libbpf's load of the object fails there.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    [Category(KernelOracle.Category)]
    public void TheKernelRefusesTheBtf(string name, string message, int errno)
    {
        KernelBpf.RequireAvailable();
        var elf = ElfFile.Parse(File.ReadAllBytes(Path(name)), name);
        var e = Assert.Throws<InvalidOperationException>(() => KernelBpf.Close(KernelBtf.LoadObjectBtf(elf.Data(elf.FindSection(".BTF")!))));
        Assert.That(e!.Message, Does.StartWith($"BPF_BTF_LOAD failed: errno {errno}:"));
    }

    /// <summary>A pointer tagged with anything but a kptr tag is a plain pointer: no kptr for BpfJit, a map the kernel creates.</summary>
    [Test]
    public void AnotherTypeTagIsNoKptr()
    {
        Assert.That(ObjectFile.Load(Path("kptr_bad_tag")).Maps["bad_tag"].Kptrs, Is.Empty);
        if (!KernelBpf.Available) return;
        var elf = ElfFile.Parse(File.ReadAllBytes(Path("kptr_bad_tag")), "kptr_bad_tag");
        var raw = elf.Data(elf.FindSection(".BTF")!);
        var btf = BtfSpec.Parse(raw, "kptr_bad_tag");
        uint key = btf.FindByName("int", BtfKind.Int).First().Id, value = btf.FindByName("value", BtfKind.Struct).Single().Id;
        int btfFd = KernelBtf.LoadObjectBtf(raw);
        try
        {
            int fd = KernelBtf.CreateMapWithBtf((uint)MapType.Array, 4, 8, 1, 0, btfFd, key, value);
            Assert.That(fd, Is.GreaterThanOrEqualTo(0), "the kernel creates the map");
            KernelBpf.Close(fd);
        }
        finally
        {
            KernelBpf.Close(btfFd);
        }
    }
}
