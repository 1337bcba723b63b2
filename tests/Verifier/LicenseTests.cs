using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// GPL-only helpers and the license rules: a program whose license is not one of the kernel's GPL-compatible
/// strings may not call a helper whose func proto is gpl_only; the license of an object comes from its
/// <c>license</c> section as libbpf reads it (a string without a NUL is accepted). Compared with the live kernel.
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class LicenseTests
{
    const string Message = "cannot call GPL-restricted function from non-GPL compatible program";

    /// <summary>The license strings tried: the six the kernel accepts, and near misses it refuses.</summary>
    static readonly string[] s_licenses =
    [
        "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL",
        "gpl", "GPL v3", "GPLv2", "GPL ", "Dual BSD/GPL v2", "MIT", "BSD", "Proprietary", "",
    ];

    static IEnumerable<int> AllowedHelpers() => Enumerable.Range(1, HelperNames.Count - 1).Where(SkLookupFuncProto.IsAllowed);

    /// <summary><c>call id; r0 = 0; exit</c>: the helper's arguments do not matter, the license is checked first.</summary>
    static Instruction[] CallOnly(int id) => MapPrograms.Assemble($"call {id}\nmov %r0, 0\nexit\n");

    static VerifierResult Ours(int id, string license) =>
        BpfJit.Verifier.Verifier.Verify(CallOnly(id), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, License = license });

    static bool RefusedForLicense(string log) => log.Contains(Message, StringComparison.Ordinal);

    static string Object(string name) => Path.Combine(Paths.RepoRoot, "tests", "Loader", "objects", name);

    [Test]
    public void Only_the_kernels_six_license_strings_are_gpl_compatible()
    {
        Assert.That(s_licenses.Where(SkLookupFuncProto.IsGplCompatible),
            Is.EqualTo(new[] { "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL" }));
    }

    [Test]
    public void Bpf_trace_printk_is_refused_to_a_non_gpl_program_with_the_kernels_message()
    {
        int printk = HelperNames.Id("trace_printk");
        Assert.Multiple(() =>
        {
            Assert.That(Ours(printk, "MIT").Log.TrimEnd(), Does.EndWith(Message));
            Assert.That(RefusedForLicense(Ours(printk, "GPL").Log), Is.False);
            Assert.That(RefusedForLicense(Ours(HelperNames.Id("get_prandom_u32"), "MIT").Log), Is.False, "a helper that is not gpl_only");
        });
    }

    [Test]
    public void Every_helper_is_gpl_only_exactly_as_in_the_kernel()
    {
        KernelBpf.RequireAvailable();
        var kernelGpl = AllowedHelpers().Where(id => RefusedForLicense(KernelBpf.Load(CallOnly(id), [], 1, "MIT").Log)).ToList();
        if (!KernelOracle.Agrees(kernelGpl.Contains(HelperNames.Id("trace_printk")), () => "bpf_trace_printk is not gpl_only in this kernel"))
            return;
        var oursGpl = AllowedHelpers().Where(id => RefusedForLicense(Ours(id, "MIT").Log)).ToList();
        Assert.That(oursGpl.Select(SkLookupFuncProto.Display), Is.EqualTo(kernelGpl.Select(SkLookupFuncProto.Display)));
        Assert.That(AllowedHelpers().Where(id => RefusedForLicense(Ours(id, "GPL").Log)), Is.Empty, "under GPL no helper is refused for its license");
    }

    [Test]
    public void Each_license_string_is_judged_as_the_kernel_judges_it()
    {
        KernelBpf.RequireAvailable();
        int printk = HelperNames.Id("trace_printk");
        foreach (string license in s_licenses)
        {
            bool kernel = RefusedForLicense(KernelBpf.Load(CallOnly(printk), [], 1, license).Log);
            Assert.That(RefusedForLicense(Ours(printk, license).Log), Is.EqualTo(kernel), $"license \"{license}\"");
        }
    }

    [Test]
    public void A_license_section_without_a_nul_is_read_to_its_end_as_libbpf_reads_it()
    {
        var collection = ObjectFile.Load(Object("license_unterminated.o"));
        var program = collection.Programs["printk_gpl"];
        Assert.Multiple(() =>
        {
            Assert.That(collection.License, Is.EqualTo("GPL"));
            Assert.That(program.License, Is.EqualTo("GPL"));
            var result = ObjectVerification.Verify(collection, program, SkLookupTestHelpers.Table);
            Assert.That(result.Accepted, Is.True, result.Log);
        });
    }

    [Test]
    public void An_objects_license_reaches_the_verifier_on_every_loading_path()
    {
        var collection = ObjectFile.Load(Object("license_mit.o"));
        Assert.That(collection.License, Is.EqualTo("MIT"));
        var printk = collection.Programs["printk_mit"];
        var verified = ObjectVerification.Verify(collection, printk, SkLookupTestHelpers.Table);
        Assert.Multiple(() =>
        {
            Assert.That(verified.Log.TrimEnd(), Does.EndWith(Message));
            var e = Assert.Throws<BpfVerifierException>(() =>
                new SkLookupProgramVerifier().VerifyWithFacts(printk, Array.Empty<BpfMap>(), BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable()));
            Assert.That(e!.Message, Does.Contain(Message));
            var prandom = ObjectVerification.Verify(collection, collection.Programs["prandom_mit"], SkLookupTestHelpers.Table);
            Assert.That(prandom.Accepted, Is.True, prandom.Log);
        });
    }
}
