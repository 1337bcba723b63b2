using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using SkLookupHelpers = BpfJit.Runtime.SkLookup.SkLookupHelpers;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// Programs with global (non-static) functions, compiled by clang (tests/Verifier/global): the kernel
/// verifies each global function once, on its own, from its BTF prototype, and checks each call's
/// arguments against it. BpfJit must give the same verdicts and messages; the live kernel, given the
/// object's BTF and func_info, is the oracle.
/// </summary>
[TestFixture]
public class GlobalFunctionTests
{
    static readonly string Dir = Path.Combine(Paths.RepoRoot, "tests", "Verifier", "global");

    /// <summary>Program, expected verdict, and the messages a rejection's log holds (checked against Linux 6.18).</summary>
    static readonly (string Object, string Program, string[]? Reject)[] Expectations =
    [
        ("global_funcs", "scalar_arg", null),
        ("global_funcs", "result_unknown", ["At program exit the register R0 has unknown scalar value should have been in [0, 1]"]),
        ("global_funcs", "ctx_arg", null),
        ("global_funcs", "tagged_ctx_arg", null),
        ("global_funcs", "ctx_arg_from_stack", ["arg#0 expects pointer to ctx", "Caller passes invalid args into func#1 ('ctx_port_is_low')"]),
        ("global_funcs", "pointer_as_scalar", ["R1 is not a scalar", "Caller passes invalid args into func#1 ('port_is_low')"]),
        ("global_funcs", "unchecked_deref", ["R1 invalid mem access 'mem_or_null'"]),
        ("global_funcs", "checked_deref", null),
        ("global_funcs", "nonnull_stack", null),
        ("global_funcs", "nonnull_maybe_null", ["arg#0 is expected to be non-NULL", "Caller passes invalid args into func#1 ('read_nonnull')"]),
        ("global_funcs", "nonnull_map_value", null),
        ("global_funcs", "nullable_map_value", null),
        ("global_funcs", "map_value_too_small", ["invalid access to map value, value_size=4 off=0 size=64", "Caller passes invalid args into func#1 ('read_big')"]),
        ("global_funcs", "readonly_value", ["write into map forbidden", "Caller passes invalid args into func#1 ('bump')"]),
        ("global_funcs", "ctx_as_memory", ["R1 type=ctx expected=fp", "Caller passes invalid args into func#1 ('read_checked')"]),
        ("global_funcs", "nonnull_null", ["arg#0 is expected to be non-NULL", "Caller passes invalid args into func#1 ('read_nonnull')"]),
        ("global_funcs", "nine_frames", ["the call stack of 8 frames is too deep !"]),
        ("global_funcs", "eight_frames", null),
        ("global_funcs", "mutual_recursion", ["the call stack of 8 frames is too deep !"]),
        ("global_funcs", "pointer_result", ["Global function pick() doesn't return scalar. Only those are supported.", "Caller passes invalid args into func#1 ('pick')"]),
    ];

    static IEnumerable<TestCaseData> Cases() =>
        Expectations.Select(e => new TestCaseData(e.Object, e.Program, e.Reject).SetName($"{e.Object}.{e.Program}"));

    static CollectionSpec Load(string obj) => ObjectFile.Load(Path.Combine(Dir, obj + ".o"));

    /// <summary>BpfJit's verdict and messages.</summary>
    [TestCaseSource(nameof(Cases))]
    public void Verdict(string obj, string program, string[]? reject)
    {
        var collection = Load(obj);
        var result = ObjectVerification.Verify(collection, collection.Programs[program], SkLookupHelpers.CreateTable());
        if (reject == null)
        {
            Assert.That(result.Accepted, Is.True, result.Log);
            return;
        }
        Assert.That(result.Accepted, Is.False, "expected a rejection");
        foreach (var m in reject) Assert.That(result.Log, Does.Contain(m));
    }

    /// <summary>
    /// Programs whose global functions were verified on their own run on both engines: the callee's
    /// instructions carry the facts of its own verification (ctx loads, memory arguments).
    /// </summary>
    [Test]
    public void AcceptedProgramsRunOnEveryEngine(
        [Values("scalar_arg", "ctx_arg", "tagged_ctx_arg", "nonnull_stack", "eight_frames")] string program,
        [ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        string obj = Path.Combine(Dir, "global_funcs.o");
        foreach (var (port, verdict) in new[] { (80, "SK_PASS"), (8080, "SK_DROP") })
        {
            var json = Cli.CliHarness.Json("run", obj, "--program", program, "--proto", "tcp", "--from", "10.0.0.1:5555",
                "--to", $"10.0.0.2:{port}", "--engine", engine);
            Assert.That(json.GetProperty("verdict").GetString(), Is.EqualTo(verdict), $"port {port}");
        }
    }

    /// <summary>func_info must name every subprogram, at its start (check_btf_func), on both sides.</summary>
    [Test]
    public void FuncInfoMustMatchTheSubprograms()
    {
        var collection = Load("global_funcs");
        var spec = collection.Programs["ctx_arg"];
        var options = ObjectVerification.Options(collection, spec, SkLookupHelpers.CreateTable());
        var missing = new VerifierOptions { Helpers = options.Helpers, Maps = options.Maps, Btf = options.Btf, FuncInfos = spec.FuncInfos.Take(1).ToList() };
        var result = BpfJit.Verifier.Verifier.Verify(spec.Instructions, missing);
        Assert.That(result.Error, Is.EqualTo("number of funcs in func_info doesn't match number of subprogs"));
        var moved = new VerifierOptions { Helpers = options.Helpers, Maps = options.Maps, Btf = options.Btf,
            FuncInfos = [spec.FuncInfos[0], spec.FuncInfos[1] with { InstructionOffset = spec.FuncInfos[1].InstructionOffset + 1 }] };
        result = BpfJit.Verifier.Verifier.Verify(spec.Instructions, moved);
        Assert.That(result.Error, Is.EqualTo("func_info BTF section doesn't match subprog layout in BPF program"));

        if (!KernelBpf.Available) return;
        var elf = ElfFile.Parse(File.ReadAllBytes(Path.Combine(Dir, "global_funcs.o")), "global_funcs");
        int btf = KernelBtf.LoadObjectBtf(elf.Data(elf.FindSection(".BTF")!));
        try
        {
            var k = KernelBpf.Load(spec.Instructions, [], btf, [(0, spec.FuncInfos[0].TypeId)]);
            Assert.That(k.Accepted, Is.False);
            Assert.That(k.Log, Does.Contain("number of funcs in func_info doesn't match number of subprogs"));
            k = KernelBpf.Load(spec.Instructions, [], btf, [(0, spec.FuncInfos[0].TypeId), (spec.FuncInfos[1].InstructionOffset + 1, spec.FuncInfos[1].TypeId)]);
            Assert.That(k.Accepted, Is.False);
            Assert.That(k.Log, Does.Contain("func_info BTF section doesn't match subprog layout in BPF program"));
        }
        finally
        {
            KernelBpf.Close(btf);
        }
    }

    /// <summary>The live kernel, loading the program with the object's BTF and func_info, agrees.</summary>
    [TestCaseSource(nameof(Cases))]
    public void KernelAgrees(string obj, string program, string[]? reject)
    {
        KernelBpf.RequireAvailable();
        var collection = Load(obj);
        var spec = collection.Programs[program];
        var elf = ElfFile.Parse(File.ReadAllBytes(Path.Combine(Dir, obj + ".o")), obj);
        int btf = KernelBtf.LoadObjectBtf(elf.Data(elf.FindSection(".BTF")!));
        var fds = collection.Maps.Select(m => KernelBpf.CreateMap((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags)).ToList();
        try
        {
            Assert.That(fds, Has.All.GreaterThanOrEqualTo(0), "BPF_MAP_CREATE");
            var funcs = spec.FuncInfos.Select(f => (f.InstructionOffset, f.TypeId)).ToList();
            var k = KernelBpf.Load(spec.Instructions, fds, btf, funcs);
            TestContext.Out.WriteLine(k.Log);
            Assert.That(k.Accepted, Is.EqualTo(reject == null), k.Log);
            foreach (var m in reject ?? []) Assert.That(k.Log, Does.Contain(m));
        }
        finally
        {
            foreach (var fd in fds) if (fd >= 0) KernelBpf.Close(fd);
            KernelBpf.Close(btf);
        }
    }
}
