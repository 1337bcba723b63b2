using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using SkLookupHelpers = BpfJit.Runtime.SkLookup.SkLookupHelpers;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// Every SK_LOOKUP and SK_REUSEPORT program of the C corpora (the loader's tests/programs and the selftest programs of
/// tests/scenarios/progs) verifies against its object's own maps and the runtime's helper table, and
/// the kernel, where bpf() is permitted, accepts each one too, loaded as its own type.
/// </summary>
[TestFixture]
public class ObjectCorpusTests
{
    static IEnumerable<TestCaseData> Programs()
    {
        string corpus = Environment.GetEnvironmentVariable("BPFJIT_CORPUS_DIR") is { Length: > 0 } env
            ? env : Path.Combine(Paths.RepoRoot, "tests", "programs");
        var objects = Directory.GetFiles(corpus, "*.o")
            .Concat(Directory.GetFiles(Path.Combine(Paths.RepoRoot, "tests", "scenarios", "progs"), "*.o"))
            .Order(StringComparer.Ordinal);
        foreach (var path in objects)
        {
            var collection = ObjectFile.Load(path);
            foreach (var program in collection.Programs.Where(p => p.IsSupported))
                yield return new TestCaseData(path, program.Name).SetName($"{Path.GetFileNameWithoutExtension(path)}.{program.Name}");
        }
    }

    [TestCaseSource(nameof(Programs))]
    public void Verifies(string path, string name)
    {
        var collection = ObjectFile.Load(path);
        var result = ObjectVerification.Verify(collection, collection.Programs[name], SkLookupHelpers.CreateTable());
        Assert.That(result.Accepted, Is.True, result.Log);
    }

    [TestCaseSource(nameof(Programs))]
    [Category(KernelOracle.Category)]
    public void KernelAccepts(string path, string name)
    {
        KernelBpf.RequireAvailable();
        var collection = ObjectFile.Load(path);
        // Maps declared with zero sizes are patched by the host before loading (tubular's destinations).
        foreach (var m in collection.Maps.Where(m => m.KeySize == 0 || m.ValueSize == 0))
        {
            m.KeySize = Math.Max(m.KeySize, 8);
            m.ValueSize = Math.Max(m.ValueSize, 4);
        }
        var fds = collection.Maps.Select(m => m.SpinLockOffset >= 0
            ? KernelBtf.CreateMapWithSpinLock((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags, m.SpinLockOffset)
            : KernelBpf.CreateMap((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags)).ToList();
        try
        {
            Assert.That(fds, Has.All.GreaterThanOrEqualTo(0), "BPF_MAP_CREATE");
            var program = collection.Programs[name];
            var k = program.Type == ProgramType.SkLookup ? KernelBpf.Load(program.Instructions, fds)
                : KernelBpf.Load(program.Instructions, fds, program.Type, program.AttachType ?? AttachType.SkReuseportSelect);
            KernelOracle.Agrees(k.Accepted, () => $"{path} {name}: the kernel rejects\n{k.Log}");
        }
        finally
        {
            foreach (var fd in fds) if (fd >= 0) KernelBpf.Close(fd);
        }
    }

    [Test]
    public void ARejectionNamesTheCSourceLine()
    {
        // The corpus's sockhash_tuple before its fix: clang sank both branches' last ctx load into one
        // load through ctx + offset. The same source shape, rebuilt here, is not needed: a program
        // with line info whose error slot has a line is enough. Take redir_port and break its exit value.
        var collection = ObjectFile.Load(Path.Combine(Paths.RepoRoot, "tests", "programs", "redir_port.o"));
        var program = collection.Programs["redir_port"];
        var code = program.Instructions.ToArray();
        int exit = Array.FindLastIndex(code, i => i.IsExit);
        // r0 = 7 just before the last exit: "At program exit the register R0 has ... should have been in [0, 1]"
        code[exit - 1] = BpfJit.Frontend.Ins.Mov64(0, 7);
        var options = ObjectVerification.Options(collection, program, SkLookupHelpers.CreateTable());
        var result = BpfJit.Verifier.Verifier.Verify(code, options);
        Assert.That(result.Accepted, Is.False);
        Assert.That(result.Log, Does.Contain("should have been in [0, 1]"));
        Assert.That(result.Log, Does.Match(@"; .+ @ redir_port\.c:\d+"));
    }
}
