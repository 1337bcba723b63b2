using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Cli;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Global data as large as Linux 6.18 and libbpf take it: a <c>.bss</c> becomes an ARRAY of one value of the
/// section's size, and BPF_MAP_CREATE alone judges that size (an ARRAY value up to INT_MAX bytes; 2 GiB is E2BIG).
/// Checked with bpftool 7 / libbpf 1.1 on 6.18.44: bss_8m.o and bss_1g.o load, bss_2g.o fails creating its .bss map
/// with E2BIG. <c>verify</c> and <c>run</c> agree, and a large <c>.bss</c> is neither copied nor committed.
/// </summary>
[TestFixture, NonParallelizable]
public class GlobalDataSizeTests
{
    long _savedLimit;

    [SetUp]
    public void Setup()
    {
        _savedLimit = MapMemory.Limit;
        // The 1 GiB map is charged in full, whatever the host has free; it commits only the pages the program writes.
        MapMemory.Limit = 3L << 30;
    }

    [TearDown]
    public void Restore() => MapMemory.Limit = _savedLimit;

    static string Object(string name) => CliHarness.Repo("tests", "Maps", "objects", name + ".o");

    static string[] RunArgs(string name) => ["run", Object(name), "--proto", "tcp", "--from", "127.0.0.1:1", "--to", "127.0.0.1:2"];

    [TestCase("bss_8m")]
    [TestCase("bss_1g")]
    public void A_large_bss_is_accepted_by_verify_and_run(string name)
    {
        var verify = CliHarness.Run("verify", Object(name));
        Assert.That(verify.Code, Is.EqualTo(0), verify.Err + verify.Out);
        var run = CliHarness.Run(RunArgs(name));
        Assert.That(run.Code, Is.EqualTo(0), run.Err + run.Out);
        Assert.That(run.Out, Does.Contain("retval 1 (SK_PASS)"));
    }

    [Test]
    public void A_2_GiB_bss_is_refused_at_map_creation_with_E2BIG_as_the_kernel_refuses_it()
    {
        CliHarness.AssertBadInput(CliHarness.Run(RunArgs("bss_2g")), "map .bss", "value_size 2147483648", "-E2BIG");
        // verify checks the maps as run creates them (nothing allocated), before the program.
        CliHarness.AssertBadInput(CliHarness.Run("verify", Object("bss_2g")), "map .bss (Array): value_size 2147483648", "-E2BIG");
    }

    [Test]
    public void The_loader_reads_a_1_GiB_bss_without_allocating_it()
    {
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var collection = ObjectFile.Load(Object("bss_1g"));
        var bss = collection.Maps[".bss"];
        Assert.Multiple(() =>
        {
            Assert.That(bss.ValueSize, Is.EqualTo(1u << 30));
            Assert.That(bss.InitialValue, Is.Empty, "a .bss has no bytes to copy");
            Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(16L << 20));
        });
    }

    [Test]
    public void Running_a_program_with_a_1_GiB_bss_allocates_no_copy_of_it()
    {
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var run = CliHarness.Run(RunArgs("bss_1g"));
        Assert.That(run.Code, Is.EqualTo(0), run.Err + run.Out);
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(64L << 20));
    }
}
