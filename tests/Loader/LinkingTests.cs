using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>Linking beyond plain calls: callback addresses and global functions in .text.</summary>
public class LinkingTests
{
    static CollectionSpec Load(string name) => ObjectFile.Load(Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o"));

    [Test]
    public void CallbackAddressBecomesPseudoFunc()
    {
        var p = Load("callback").Programs.Single();
        Assert.That(p.Name, Is.EqualTo("loop_prog"));
        Assert.That(p.Functions.Select(f => (f.Name, f.SectionName)), Is.EqualTo(new[] { ("loop_prog", "sk_lookup"), ("count_port", ".text") }));
        int at = Array.FindIndex(p.Instructions, i => i.IsLdImm64);
        var ld = p.Instructions[at];
        Assert.That(ld.Src, Is.EqualTo((byte)Ld64Source.Func));
        Assert.That(at + 1 + ld.Imm, Is.EqualTo(p.Functions[1].InstructionIndex), "points at the appended callback");
        Assert.That(p.Instructions[at + 1].Imm, Is.Zero);
        Assert.That(p.MapReferences, Is.Empty);
        Assert.That(Disassembler.Format(p.Instructions, at), Is.EqualTo($"r2 = func[pc+{ld.Imm}] ll"));
        Assert.That(p.Instructions.Any(i => i.IsCall && i.Imm == 181), "bpf_loop");
    }

    [Test]
    public void GlobalTextFunctions()
    {
        var spec = Load("text_functions");
        Assert.That(spec.Programs.Select(p => (p.Name, p.SectionName, p.Type)), Is.EquivalentTo(new[]
        {
            ("uses_global", "sk_lookup", ProgramType.SkLookup),
            ("orphan", ".text", ProgramType.Unspec),
        }));
        var uses = spec.Programs["uses_global"];
        Assert.That(uses.Functions.Select(f => f.Name), Is.EqualTo(new[] { "uses_global", "global_helper" }));
        var orphan = spec.Programs["orphan"];
        Assert.That(orphan.IsSupported, Is.False);
        Assert.That(orphan.Notes.Single(), Does.Contain("not a known program type"));
        Assert.That(orphan.Instructions[^1].IsExit);
    }
}
