using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// C programs compiled by clang (tests/Verifier/c, rebuilt by build.sh): real compiler output —
/// narrow loads, 32-bit subregisters, loops, spills — through BpfJit and the kernel.
/// </summary>
[TestFixture]
public class CProgramTests
{
    /// <summary>A compiled program and what the verifier must answer.</summary>
    public sealed record CProgram(string Name, bool Accept, string? Message)
    {
        /// <inheritdoc />
        public override string ToString() => Name;

        /// <summary>The instructions from NAME.bin, with map relocations (NAME.maps) turned into ld_imm64 src=5 indexes into <see cref="Maps"/>.</summary>
        public Instruction[] Load()
        {
            var p = Decoder.Decode(File.ReadAllBytes(Path.Combine(Dir, Name + ".bin")));
            string relocs = Path.Combine(Dir, Name + ".maps");
            if (File.Exists(relocs))
            {
                foreach (var line in File.ReadAllLines(relocs).Where(l => l.Length > 0))
                {
                    var parts = line.Split(' ');
                    int insn = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
                    int index = Array.FindIndex(Maps, m => m.Name == parts[1]);
                    Assert.That(index, Is.GreaterThanOrEqualTo(0), $"unknown map symbol {parts[1]}");
                    p[insn] = p[insn] with { Src = (byte)Ld64Source.MapIdx, Imm = index };
                }
            }
            return p;
        }
    }

    /// <summary>The maps the C programs refer to by symbol (tubular's, sk-lookup.md 9.1, with smaller sizes).</summary>
    public static readonly MapInfo[] Maps =
    [
        new("sockets", MapType.SockMap, 4, 8, 1024),
        new("bindings", MapType.LpmTrie, 23, 8, 1024, Flags: 1),
        new("destination_metrics", MapType.PerCpuArray, 4, 24, 1024),
    ];

    static string Dir => Path.Combine(Paths.RepoRoot, "tests", "Verifier", "c");

    static IEnumerable<CProgram> Programs()
    {
        string src = string.Join("\n", Directory.GetFiles(Dir, "*.c").OrderBy(f => f, StringComparer.Ordinal).Select(File.ReadAllText));
        foreach (Match m in Regex.Matches(src, @"// expect: (?<e>[^\n]*)\nSEC\(""sk_lookup/(?<n>\w+)""\)"))
        {
            string e = m.Groups["e"].Value.Trim();
            bool accept = e == "accept";
            yield return new CProgram(m.Groups["n"].Value, accept, accept ? null : e["reject ".Length..]);
        }
    }

    /// <summary>There are C programs and each has its compiled fixture.</summary>
    [Test]
    public void FixturesExist()
    {
        var all = Programs().ToList();
        Assert.That(all, Has.Count.GreaterThanOrEqualTo(12));
        foreach (var p in all) Assert.That(File.Exists(Path.Combine(Dir, p.Name + ".bin")), p.Name);
    }

    /// <summary>BpfJit's verdict and message.</summary>
    [TestCaseSource(nameof(Programs))]
    public void Verdict(CProgram p)
    {
        var r = BpfJit.Verifier.Verifier.Verify(p.Load(), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = Maps });
        Assert.That(r.Accepted, Is.EqualTo(p.Accept), r.Log);
        if (!p.Accept) Assert.That(r.Log, Does.Contain(p.Message));
    }

    /// <summary>The kernel's verdict is the same (a different build's other answer is reported: <see cref="KernelOracle"/>).</summary>
    [TestCaseSource(nameof(Programs))]
    [Category(KernelOracle.Category)]
    public void KernelAgrees(CProgram p)
    {
        KernelBpf.RequireAvailable();
        var fds = Maps.Select(m => KernelBpf.CreateMap((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags)).ToList();
        try
        {
            Assert.That(fds, Has.All.GreaterThanOrEqualTo(0), "BPF_MAP_CREATE");
            var k = KernelBpf.Load(p.Load(), fds);
            if (!KernelOracle.Agrees(k.Accepted == p.Accept, () => $"{p}: the kernel {(k.Accepted ? "accepts" : "rejects")}\n{k.Log}")) return;
            if (!p.Accept) KernelOracle.Agrees(k.Log.Contains(p.Message!, StringComparison.Ordinal), () => $"{p}: the kernel's log lacks '{p.Message}'\n{k.Log}");
        }
        finally
        {
            foreach (var fd in fds) KernelBpf.Close(fd);
        }
    }
}
