using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.ProgramTypes;
using BpfJit.Runtime.ProgramTypes.SkReuseport;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// The program-type declarations (src/Runtime/ProgramTypes) against the loader, the verifier and the live kernel:
/// every context offset and size, every helper id and its GPL mark, for each supported type.
/// </summary>
[TestFixture]
public class ProgramTypeSeamTests
{
    static IEnumerable<ProgramType> Types() => ProgramTypeRegistry.All.Select(d => d.Type);

    static readonly string[] s_sizes = ["b", "h", "w", "dw"];

    static Instruction[] CtxLoad(int off, int sizeIndex) => Assembler.Assemble($"ldx{s_sizes[sizeIndex]} %r2, [%r1+{off}]\nmov %r0, 1\nexit");

    static VerifierResult Ours(Instruction[] program, ProgramType type, string license = "GPL") =>
        BpfJit.Verifier.Verifier.Verify(program, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, ProgramType = type, License = license });

    static BpfJit.Baselines.KernelBpf.LoadResult Kernel(Instruction[] program, IProgramTypeDefinition d, string license = "GPL") =>
        KernelBpf.Load(program, [], d.Type, d.ExpectedAttachTypes[0], license: license);

    /// <summary>Each type's section names classify to it, with one of its attach types, and make a supported program.</summary>
    [TestCaseSource(nameof(Types))]
    public void The_loader_recognises_each_declared_type(ProgramType type)
    {
        var d = ProgramTypeRegistry.Get(type);
        foreach (var section in d.SectionNames)
        {
            var (t, attach) = SectionNames.Classify(section.EndsWith('/') ? section + "x" : section);
            Assert.That(t, Is.EqualTo(type), section);
            Assert.That(d.ExpectedAttachTypes, Does.Contain(attach), section);
            Assert.That(new ProgramSpec("p", section, t, attach, []).IsSupported, section);
        }
    }

    /// <summary>The loader supports exactly the declared types.</summary>
    [Test]
    public void Only_declared_types_are_supported()
    {
        foreach (var type in Enum.GetValues<ProgramType>())
        {
            bool declared = ProgramTypeRegistry.Find(type) != null;
            Assert.That(new ProgramSpec("p", "x", type, null, []).IsSupported, Is.EqualTo(declared), type.ToString());
            if (!declared) Assert.Throws<ArgumentException>(() => Ours([.. Assembler.Assemble("mov %r0, 1\nexit")], type), type.ToString());
        }
    }

    /// <summary>Every declared field is readable at its own offset and size, and is what the verifier reports to the JIT.</summary>
    [TestCaseSource(nameof(Types))]
    public void Each_field_is_a_fact_for_the_jit(ProgramType type)
    {
        var d = ProgramTypeRegistry.Get(type);
        foreach (var f in d.ContextFields.Where(f => f.Size is 1 or 2 or 4 or 8 && !f.Name.StartsWith("pad", StringComparison.Ordinal)))
        {
            var r = Ours(CtxLoad(f.Offset, (int)Math.Log2(f.Size)), type);
            Assert.That(r.Accepted, $"{f.Name}: {r.Error}");
            Assert.That((r.Facts[0].CtxField, r.Facts[0].CtxOffset), Is.EqualTo((f.Name, f.Offset)), f.Name);
        }
    }

    /// <summary>
    /// Every load of 1, 2, 4 and 8 bytes at every offset of the context and a little past it: the declaration's rule,
    /// BpfJit's verdict and the kernel's agree (<c>*_is_valid_access</c> with its narrow loads).
    /// </summary>
    [TestCaseSource(nameof(Types)), Category(KernelOracle.Category)]
    public void Context_access_agrees_with_the_kernel(ProgramType type)
    {
        KernelBpf.RequireAvailable();
        var d = ProgramTypeRegistry.Get(type);
        var differ = new List<string>();
        for (int off = 0; off < d.ContextSize + 8; off++)
            for (int s = 0; s < 4; s++)
            {
                var program = CtxLoad(off, s);
                bool declared = d.ContextAccess(off, 1 << s, write: false) != null;
                bool ours = Ours(program, type).Accepted;
                var k = Kernel(program, d);
                Assert.That(ours, Is.EqualTo(declared), $"off={off} size={1 << s}");
                if (k.Accepted != declared) differ.Add($"off={off} size={1 << s}: declared {declared}, kernel {k.Accepted}");
            }
        KernelOracle.Agrees(differ.Count == 0, () => string.Join("\n", differ));
    }

    /// <summary>
    /// Every helper id: the kernel offers it to the type exactly when the declaration does, and refuses it to a
    /// non-GPL program exactly when the declaration marks it GPL-only.
    /// </summary>
    [TestCaseSource(nameof(Types)), Category(KernelOracle.Category)]
    public void Helper_list_and_gpl_marks_agree_with_the_kernel(ProgramType type)
    {
        KernelBpf.RequireAvailable();
        var d = ProgramTypeRegistry.Get(type);
        var differ = new List<string>();
        for (int id = 1; id < HelperNames.Count; id++)
        {
            var program = Assembler.Assemble($"call {id}\nmov %r0, 1\nexit");
            var k = Kernel(program, d);
            bool kernelOffers = !k.Log.Contains("program of this type cannot use helper", StringComparison.Ordinal)
                && !k.Log.Contains("invalid func", StringComparison.Ordinal) && !k.Log.Contains("unknown func", StringComparison.Ordinal);
            if (kernelOffers != d.IsHelperAllowed(id)) differ.Add($"{BaseFuncProto.Display(id)}: declared {d.IsHelperAllowed(id)}, kernel {kernelOffers}");
            if (!kernelOffers || !d.IsHelperAllowed(id)) continue;
            bool kernelGpl = Kernel(program, d, license: "MIT").Log.Contains("cannot call GPL-restricted function", StringComparison.Ordinal);
            if (kernelGpl != d.IsGplOnly(id)) differ.Add($"{BaseFuncProto.Display(id)}: declared gpl_only {d.IsGplOnly(id)}, kernel {kernelGpl}");
        }
        KernelOracle.Agrees(differ.Count == 0, () => string.Join("\n", differ));
    }

    /// <summary>A helper the type gives its own prototype needs no entry in the helper table: the declaration is the prototype.</summary>
    [Test]
    public void A_type_declared_prototype_is_checked_without_the_runtime_table()
    {
        var program = Assembler.Assemble("mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\ncall 26\nmov %r0, 1\nexit");
        Assert.That(SkLookupTestHelpers.Table.TryGet(SkReuseportType.SkbLoadBytesId, out _), Is.False);
        Assert.That(Ours(program, ProgramType.SkReuseport).Accepted, Ours(program, ProgramType.SkReuseport).Log);
        // The declared ARG_CONST_SIZE is what rejects a zero length.
        var zero = Assembler.Assemble("mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 26\nmov %r0, 1\nexit");
        Assert.That(Ours(zero, ProgramType.SkReuseport).Error, Does.Contain("R4 invalid zero-sized read"));
    }

    /// <summary>The runtime's verifier slot checks an object program by its own type and gives the JIT its context facts.</summary>
    [Test]
    public void The_runtime_verifier_uses_the_programs_type()
    {
        var insns = Assembler.Assemble("ldxdw %r2, [%r1+8]\nldxw %r0, [%r1+32]\nexit");
        var spec = new ProgramSpec("p", "sk_reuseport", ProgramType.SkReuseport, AttachType.SkReuseportSelect, insns);
        var facts = new SkLookupProgramVerifier().VerifyWithFacts(spec, [], SkLookupTestHelpers.Table);
        Assert.That((facts[0].CtxField, facts[1].CtxField, facts[1].CtxOffset), Is.EqualTo(("data_end", "hash", 32)));
        var asLookup = new ProgramSpec("p", "sk_lookup", ProgramType.SkLookup, AttachType.SkLookup, insns);
        Assert.That(() => new SkLookupProgramVerifier().VerifyWithFacts(asLookup, [], SkLookupTestHelpers.Table),
            Throws.InstanceOf<BpfVerifierException>().With.Message.Contains("invalid bpf_context access off=8 size=8"));
    }

    /// <summary>SK_REUSEPORT returns anything (no range in check_return_code); SK_LOOKUP only SK_DROP or SK_PASS.</summary>
    [Test]
    public void The_return_range_is_the_types()
    {
        var two = Assembler.Assemble("mov %r0, 2\nexit");
        Assert.That(Ours(two, ProgramType.SkReuseport).Accepted);
        Assert.That(Ours(two, ProgramType.SkLookup).Error, Does.Contain("should have been in [0, 1]"));
    }
}
