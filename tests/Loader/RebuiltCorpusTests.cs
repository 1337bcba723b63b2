using System.Diagnostics;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>
/// Rebuilds the corpus with tests/programs/build.sh into a fresh folder (when clang and the libbpf
/// headers are installed) and checks that the loader reads the rebuilt objects like the committed
/// ones: same programs, sections, types and maps, and the llvm-objdump oracle holds.
/// </summary>
[NonParallelizable]
public class RebuiltCorpusTests
{
    string? _dir;
    string? _skip;

    [OneTimeSetUp]
    public void Build()
    {
        if (!File.Exists("/usr/include/bpf/bpf_helpers.h")) { _skip = "libbpf-dev headers are not installed"; return; }
        _dir = Path.Combine(Path.GetTempPath(), "bpfjit-corpus-" + Guid.NewGuid().ToString("N"));
        var psi = new ProcessStartInfo("sh", [Path.Combine(Corpus.SourceDirectory, "build.sh"), _dir])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        try
        {
            using var proc = Process.Start(psi)!;
            string err = proc.StandardError.ReadToEnd();
            proc.StandardOutput.ReadToEnd();
            proc.WaitForExit();
            if (proc.ExitCode != 0)
            {
                if (err.Contains("not found")) _skip = "clang is not installed: " + err.Trim();
                else Assert.Fail($"build.sh failed ({proc.ExitCode}): {err}");
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            _skip = "cannot run sh: " + e.Message;
        }
    }

    [OneTimeTearDown]
    public void Clean()
    {
        if (_dir != null && Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    static IEnumerable<string> Names() => Corpus.Names();

    string Rebuilt(string name)
    {
        if (_skip != null) Assert.Ignore(_skip);
        string path = Path.Combine(_dir!, name + ".o");
        Assert.That(File.Exists(path), $"build.sh did not produce {path}");
        return path;
    }

    [TestCaseSource(nameof(Names))]
    public void RebuiltObjectLoadsLikeTheCommittedOne(string name)
    {
        var rebuilt = ObjectFile.Load(Rebuilt(name));
        var committed = ObjectFile.Load(Path.Combine(Corpus.SourceDirectory, name + ".o"));
        Assert.That(rebuilt.Programs.Select(p => (p.Name, p.SectionName, p.Type, p.AttachType, p.Functions.Count)),
            Is.EquivalentTo(committed.Programs.Select(p => (p.Name, p.SectionName, p.Type, p.AttachType, p.Functions.Count))));
        // Another clang may lay symbols out in another order, so compare as sets.
        Assert.That(rebuilt.Maps.Select(m => m.ToString()), Is.EquivalentTo(committed.Maps.Select(m => m.ToString())));
        Assert.That(rebuilt.License, Is.EqualTo(committed.License));
        Assert.That(rebuilt.KernelVersion, Is.EqualTo(committed.KernelVersion));
    }

    [TestCaseSource(nameof(Names))]
    public void RebuiltObjectMatchesLlvmObjdump(string name) => ObjdumpOracleTests.CheckLinkedPrograms(Rebuilt(name));
}
