using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Loader;

/// <summary>
/// A PROG_ARRAY's initial values in <c>.maps</c> (<c>__array(values, int (void *))</c>, <c>.values = { [1] = (void *)&amp;prog }</c>):
/// the loader records the program of each slot, and every host stores the loaded programs in the live PROG_ARRAY
/// as libbpf's init_prog_array_slots does, so tail calls reach them on both engines.
/// </summary>
[TestFixture]
public class ProgArrayInitTests
{
    static string Object(string name) => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o");

    [Test]
    public void TheLoaderRecordsTheProgramOfEachSlot()
    {
        var spec = ObjectFile.Load(Object("prog_array_init"));
        var jumps = spec.Maps["jumps"];
        Assert.That((jumps.Type, jumps.KeySize, jumps.ValueSize, jumps.MaxEntries), Is.EqualTo((MapType.ProgArray, 4u, 4u, 4u)));
        Assert.That(jumps.InitialPrograms, Is.EqualTo(new Dictionary<uint, string> { [1] = "drop_prog", [2] = "pass_prog" }));
        Assert.That(jumps.Clone().InitialPrograms, Is.EqualTo(jumps.InitialPrograms));
        Assert.That(spec.Programs.Select(p => p.Name), Is.EquivalentTo(new[] { "drop_prog", "pass_prog", "entry" }));
    }

    /// <summary>
    /// <c>bpfjit run --program entry</c> loads the programs the slots name and stores them: port 7001 tail-calls drop_prog
    /// (without the stored program, entry would fall through to SK_PASS), 7002 pass_prog, 7003 an empty slot.
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void RunTailCallsIntoTheInitialPrograms(string engine)
    {
        string RunTo(string to)
        {
            var o = new StringWriter();
            var e = new StringWriter();
            int code = BpfJit.Cli.Cli.Run(["run", Object("prog_array_init"), "--program", "entry", "--proto", "tcp",
                "--from", "127.0.0.2:5000", "--to", to, "--engine", engine], o, e);
            Assert.That(code, Is.EqualTo(0), e.ToString());
            return o.ToString();
        }
        Assert.Multiple(() =>
        {
            Assert.That(RunTo("127.0.0.1:7001"), Does.Contain("retval 0 (SK_DROP)"), "slot 1: drop_prog");
            Assert.That(RunTo("127.0.0.1:7002"), Does.Contain("retval 1 (SK_PASS)"), "slot 2: pass_prog");
            Assert.That(RunTo("127.0.0.1:7003"), Does.Contain("retval 0 (SK_DROP)"), "slot 3 is empty: entry's own verdict");
        });
    }

    /// <summary>A scenario's object has its PROG_ARRAY filled too, with the programs the scenario does not attach.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void ScenarioTailCallsIntoTheInitialPrograms(string engine)
    {
        string dir = Path.Combine(Path.GetTempPath(), "bpfjit-progarray-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Object("prog_array_init"), Path.Combine(dir, "p.o"));
            string file = Path.Combine(dir, "s.json");
            File.WriteAllText(file, """
                {
                  "object": "p.o",
                  "attach": ["entry"],
                  "lookups": [
                    {"proto": "tcp", "from": "127.0.0.2:5000", "to": "127.0.0.1:7001", "expect": "refused"},
                    {"proto": "tcp", "from": "127.0.0.2:5000", "to": "127.0.0.1:7002", "expect": "none"},
                    {"proto": "tcp", "from": "127.0.0.2:5000", "to": "127.0.0.1:7003", "expect": "refused"}
                  ]
                }
                """);
            var o = new StringWriter();
            var e = new StringWriter();
            int code = BpfJit.Cli.Cli.Run(["scenario", file, "--engine", engine], o, e);
            Assert.That(code, Is.EqualTo(0), o + e.ToString());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Test]
    public void ASlotNamingASubprogramIsRefused()
    {
        // helper is a global .text function that entry calls: a subprogram, which libbpf does not store either.
        var e = Assert.Throws<BpfObjectException>(() => ObjectFile.Load(Object("prog_array_subprog")))!;
        Assert.That((e.Section, e.Reason), Is.EqualTo((".maps", "map 'jumps': slot 0: 'helper' isn't an entry-point program")));
    }
}
