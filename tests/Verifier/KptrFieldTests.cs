using BpfJit.Frontend.Elf;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Loader;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// <c>__kptr</c> and <c>__kptr_untrusted</c> fields of a map value (tests/Loader/objects/kptr_fields.c): loads, stores and
/// bpf_kptr_xchg as the kernel's check_map_kptr_access, map_kptr_match_type and process_kptr_func judge them. Each program
/// is one case; BpfJit and the live kernel (given the object's BTF and a map typed by it) agree on the verdict and message.
/// </summary>
[TestFixture]
public class KptrFieldTests
{
    static string Object => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", "kptr_fields.o");

    /// <summary>Each program and the kernel's message when it refuses it (null: accepted).</summary>
    public static readonly object?[][] Cases =
    [
        ["load_ref", null],
        ["store_current", null],
        ["store_null_untrusted", null],
        ["store_null_ref", "store to referenced kptr disallowed"],
        ["store_scalar", "invalid kptr access, R1 type=scalar expected=ptr_task_struct or untrusted_ptr_task_struct"],
        ["xchg_null", "Unreleased reference id=2 alloc_insn=11"],
        ["xchg_untrusted", "off=16 kptr isn't referenced kptr"],
        ["xchg_not_kptr", "off=0 doesn't point to kptr"],
        ["xchg_unowned", "R2 must be referenced when passed to release function"],
        ["read_half", "kptr access size must be BPF_DW"],
        ["read_misaligned", "kptr access misaligned expected=8 off=12"],
        ["helper_reads_kptr", "kptr cannot be accessed indirectly by helper"],
        ["xchg_ctx", "R1 type=ctx expected=map_value, ptr_"],
        ["xchg_ctx_value", "R2 type=ctx expected=ptr_, trusted_ptr_, rcu_ptr_"],
        ["xchg_back", "R9 invalid mem access 'scalar'"],
        ["copy_into_untrusted", null],
        ["read_var_off", "kptr access cannot have variable offset"],
        ["atomic_add", "kptr in map can only be accessed using BPF_MEM instruction mode"],
    ];

    [TestCaseSource(nameof(Cases))]
    public void BpfJitJudgesAsTheKernelDoes(string program, string? error)
    {
        var collection = ObjectFile.Load(Object);
        var result = ObjectVerification.Verify(collection, collection.Programs[program], SkLookupHelpers.CreateTable());
        Assert.That(result.Accepted, Is.EqualTo(error == null), result.Log);
        if (error != null) Assert.That(result.Error!.Split('\n')[0], Is.EqualTo(error), result.Log);
    }

    [TestCaseSource(nameof(Cases))]
    [Category(KernelOracle.Category)]
    public void TheKernelJudgesTheSame(string program, string? error)
    {
        KernelBpf.RequireAvailable();
        var collection = ObjectFile.Load(Object);
        var spec = collection.Programs[program];
        var elf = ElfFile.Parse(File.ReadAllBytes(Object), "kptr_fields");
        int btf = KernelBtf.LoadObjectBtf(elf.Data(elf.FindSection(".BTF")!));
        var fds = collection.Maps.Select(m => KernelBtf.CreateMapWithBtf((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags,
            btf, m.BtfKeyTypeId, m.BtfValueTypeId)).ToList();
        try
        {
            Assert.That(fds, Has.All.GreaterThanOrEqualTo(0), "BPF_MAP_CREATE with the object's BTF");
            var k = KernelBpf.Load(spec.Instructions, fds);
            TestContext.Out.WriteLine(k.Log);
            Assert.That(k.Accepted, Is.EqualTo(error == null), k.Log);
            if (error != null) Assert.That(k.Log, Does.Contain(error + "\n"), k.Log);
        }
        finally
        {
            foreach (int fd in fds) if (fd >= 0) KernelBpf.Close(fd);
            KernelBpf.Close(btf);
        }
    }
}
