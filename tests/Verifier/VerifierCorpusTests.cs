using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>The accept/reject corpus: BpfJit's verdict and message, and the live kernel's verdict.</summary>
[TestFixture]
public class VerifierCorpusTests
{
    static IEnumerable<CorpusCase> Cases() => CorpusCase.All();

    static VerifierResult Verify(CorpusCase c, int logLevel = 1) =>
        BpfJit.Verifier.Verifier.Verify(c.Assemble(), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = c.Maps, LogLevel = logLevel, KernelFunctions = c.KernelFunctions, ProgramType = c.Type });

    /// <summary>BpfJit accepts or rejects with the expected message.</summary>
    [TestCaseSource(nameof(Cases))]
    public void Verdict(CorpusCase c)
    {
        var r = Verify(c);
        if (c.Accept)
            Assert.That(r.Accepted, Is.True, $"expected accept, got: {r.Error}\n{r.Log}");
        else
        {
            Assert.That(r.Accepted, Is.False, "expected reject: " + c.Message);
            Assert.That(r.Log, Does.Contain(c.Message), r.Log);
        }
    }

    /// <summary>
    /// The live kernel gives the recorded verdict (or the documented deliberate one). A kernel of another build
    /// that answers differently is reported, not failed (<see cref="KernelOracle"/>).
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    [Category(KernelOracle.Category)]
    public void KernelAgrees(CorpusCase c)
    {
        KernelBpf.RequireAvailable();
        var fds = new List<int>();
        try
        {
            foreach (var m in c.Maps)
            {
                uint flags = m.Flags | (m.IsReadOnly ? 0x80u : 0);
                int fd = m.TimerOffset >= 0
                    ? KernelBtf.CreateMapWithTimer((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, flags, m.TimerOffset, m.SpinLockOffset)
                    // Local-storage maps need BTF key and value types even without a lock.
                    : m.SpinLockOffset >= 0 || m.Type is MapType.TaskStorage or MapType.CgrpStorage
                    ? KernelBtf.CreateMapWithSpinLock((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, flags, m.SpinLockOffset)
                    : KernelBpf.CreateMap((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, flags,
                        m.InnerMap is { } inner ? fds[c.Maps.ToList().FindIndex(x => x.Name == inner.Name)] : 0);
                if (fd < 0) Assert.Fail($"BPF_MAP_CREATE {m} failed: errno {-fd}");
                fds.Add(fd);
            }
            var insns = KernelBtf.ResolveKfuncs(c.Assemble(), c.KernelFunctions);
            var k = c.Type == BpfJit.Frontend.Elf.ProgramType.SkLookup ? KernelBpf.Load(insns, fds) : KernelBpf.Load(insns, fds, c.Type, c.Attach);
            bool expected = c.KernelAccept ?? c.Accept;
            if (k.Accepted != expected)
            {
                KernelOracle.Differs(c.CheckedOn ?? "an unrecorded kernel",
                    $"{c}: expected the kernel to {(expected ? "accept" : "reject")}, it {(k.Accepted ? "accepts" : "rejects")} (errno {k.Errno})\n{Tail(k.Log)}");
                return;
            }
            if (!k.Accepted && c.KernelAccept == null && c.Message != null && !k.Log.Contains(c.Message, StringComparison.Ordinal))
                TestContext.Out.WriteLine($"message differs: BpfJit '{c.Message}', kernel:\n{Tail(k.Log)}");
        }
        finally
        {
            foreach (var fd in fds) KernelBpf.Close(fd);
        }
    }

    static string Tail(string log)
    {
        var lines = log.Split('\n');
        return string.Join("\n", lines.Skip(Math.Max(0, lines.Length - 8)));
    }

    /// <summary>The corpus is at least 200 programs and every case file parses and assembles.</summary>
    [Test]
    public void CorpusIsLargeEnough()
    {
        var all = Cases().ToList();
        foreach (var c in all) Assert.DoesNotThrow(() => c.Assemble(), c.ToString());
        Assert.That(all, Has.Count.GreaterThanOrEqualTo(200));
        Assert.That(all.Select(c => c.ToString()).Distinct().Count(), Is.EqualTo(all.Count), "case names are unique per file");
        Assert.That(all.Where(c => string.IsNullOrEmpty(c.CheckedOn)).Select(c => c.ToString()), Is.Empty, "every case records the kernel build it was checked on (## checked-on:)");
    }
}
