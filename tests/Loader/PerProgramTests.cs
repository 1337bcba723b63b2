using BpfJit.Frontend;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using SkLookupHelpers = BpfJit.Runtime.SkLookup.SkLookupHelpers;

namespace BpfJit.Tests.Loader;

/// <summary>
/// Each program of an object is judged on its own, as Linux does: an instruction or a kernel function
/// BpfJit does not support rejects only the program that uses it, as a verifier rejection naming the
/// instruction; the object loads. And map-in-map declarations load with their inner map and initial slots.
/// </summary>
[TestFixture]
public class PerProgramTests
{
    static string Object(string name) => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o");

    static VerifierResult Verify(CollectionSpec spec, string program) =>
        ObjectVerification.Verify(spec, spec.Programs[program], SkLookupHelpers.CreateTable());

    [Test]
    public void AnUnknownInstructionRejectsOnlyItsProgram()
    {
        var spec = ObjectFile.Load(Object("unsupported_insn"));
        Assert.That(spec.Programs.Select(p => p.Name), Is.EqualTo(new[] { "bad_opcode", "good" }));
        var bad = Verify(spec, "bad_opcode");
        Assert.That((bad.Accepted, bad.ErrorInsn, bad.Error), Is.EqualTo((false, 0, "unknown opcode 0xe6")));
        Assert.That(bad.Log, Does.StartWith("0: (e6) <unknown: unknown opcode 0xe6>\nunknown opcode 0xe6"));
        Assert.That(Verify(spec, "good").Accepted, Is.True);
        Assert.That(Disassembler.Format(spec.Programs["bad_opcode"].Instructions, 0), Is.EqualTo("<unknown: unknown opcode 0xe6>"));
    }

    /// <summary>
    /// A raw map fd in an ld_imm64 without a relocation loads (libbpf passes it on) and rejects only its program,
    /// with the kernel's message: an object's program names maps by relocation, so the fd is no map's.
    /// </summary>
    [Test]
    public void ARawMapFdRejectsOnlyItsProgram()
    {
        var spec = ObjectFile.Load(Object("raw_map_fd"));
        Assert.That(spec.Programs.Select(p => p.Name), Is.EqualTo(new[] { "raw_fd", "good" }));
        var bad = Verify(spec, "raw_fd");
        Assert.That((bad.Accepted, bad.ErrorInsn, bad.Error), Is.EqualTo((false, 0, "fd 1 is not pointing to valid bpf_map")));
        Assert.That(Verify(spec, "good").Accepted, Is.True);
        // The same check on the path that verifies against live maps (bpfjit run, scenarios, the embedding example).
        using var map = BpfJit.Runtime.Maps.MapFactory.Create(MapType.Array, 4, 4, 2, 0, "m");
        var e = Assert.Throws<BpfVerifierException>(() => new SkLookupProgramVerifier().VerifyWithFacts(spec.Programs["raw_fd"], [map, map], SkLookupHelpers.CreateTable()))!;
        Assert.That(e.Result.Error, Is.EqualTo("fd 1 is not pointing to valid bpf_map"));
    }

    [Test]
    public void KernelFunctionCallsAreJudgedPerProgram()
    {
        var spec = ObjectFile.Load(Object("kfunc_calls"));
        var rcu = spec.Programs["rcu_section"];
        Assert.That(rcu.KernelFunctions, Is.EqualTo(new[] { "bpf_rcu_read_lock", "bpf_rcu_read_unlock" }));
        Assert.That(rcu.Instructions[1], Is.EqualTo(rcu.Instructions[1] with { Opcode = Op.Call, Src = (byte)CallKind.Kfunc, Imm = 1 }));
        // The RCU read section is one of the kfuncs BpfJit runs; a kfunc for tracing programs is refused.
        var r = Verify(spec, "rcu_section");
        Assert.That(r.Accepted, Is.True, r.Log);
        var t = Verify(spec, "task_lookup");
        Assert.That((t.Accepted, t.ErrorInsn, t.Error), Is.EqualTo((false, 2, "calling kernel function bpf_task_from_pid is not allowed")));
        Assert.That(Verify(spec, "plain").Accepted, Is.True);
    }

    /// <summary>
    /// The live kernel, given the same programs with each kfunc call resolved to its vmlinux BTF id (what
    /// libbpf does), allows the common kfuncs and refuses the tracing one with the message BpfJit gives.
    /// </summary>
    [Test]
    public void KernelAgreesOnWhichKfuncsSkLookupMayCall()
    {
        KernelBpf.RequireAvailable();
        const string vmlinux = "/sys/kernel/btf/vmlinux";
        if (!File.Exists(vmlinux)) Assert.Ignore("no kernel BTF at " + vmlinux);
        var kernelBtf = BtfSpec.Parse(File.ReadAllBytes(vmlinux), vmlinux);
        var spec = ObjectFile.Load(Object("kfunc_calls"));
        foreach (var (name, accepted) in new[] { ("rcu_section", true), ("task_lookup", false), ("plain", true) })
        {
            var p = spec.Programs[name];
            var slots = p.Instructions.Select(i => i.IsCall && i.Src == (byte)CallKind.Kfunc
                ? i with { Imm = (int)kernelBtf.FindByName(p.KernelFunctions[i.Imm], BtfKind.Func).Single().Id } : i).ToArray();
            var k = KernelBpf.Load(slots, []);
            Assert.That(k.Accepted, Is.EqualTo(accepted), $"{name}: {k.Log}");
            if (!accepted) Assert.That(k.Log, Does.Contain("calling kernel function bpf_task_from_pid is not allowed"));
        }
    }

    [Test]
    public void MapInMapDeclarationsLoad()
    {
        var spec = ObjectFile.Load(Object("map_in_map"));
        Assert.That(spec.Maps.Select(m => m.Name), Is.EqualTo(new[] { "inner1", "outer" }));
        var outer = spec.Maps["outer"];
        Assert.That((outer.Type, outer.KeySize, outer.ValueSize, outer.MaxEntries), Is.EqualTo((MapType.ArrayOfMaps, 4u, 4u, 2u)));
        var inner = outer.InnerMap!;
        Assert.That((inner.Name, inner.Type, inner.KeySize, inner.ValueSize, inner.MaxEntries), Is.EqualTo(("outer.inner", MapType.Array, 4u, 4u, 1u)));
        Assert.That(outer.InitialInnerMaps, Is.EqualTo(new Dictionary<uint, string> { [0] = "inner1" }));
        Assert.That(outer.Clone().InitialInnerMaps, Is.EqualTo(outer.InitialInnerMaps));
        Assert.That(spec.Programs.Single().Name, Is.EqualTo("uses_outer"));
        // The lookup in the outer map returns its inner map or NULL (map_value_or_null, a map_ptr after the check).
        var r = Verify(spec, "uses_outer");
        Assert.That(r.Accepted, Is.True, r.Error);
    }
}

/// <summary>The CLI verbs list every program of such objects, each with its own verdict.</summary>
[TestFixture]
public class PerProgramCliTests
{
    static string Object(string name) => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o");

    static (int Code, string Out) Run(Func<string[], TextWriter, TextWriter, int> command, params string[] args)
    {
        var o = new StringWriter();
        int code = command(args, o, new StringWriter());
        return (code, o.ToString());
    }

    /// <summary>
    /// <c>bpfjit run</c> creates the object's maps and stores its initial inner maps (<c>.values = { [1] = &amp;port1_tenant }</c>):
    /// port 7001 reaches tenant 0 through by_port[1], whose SOCKMAP is empty (SK_DROP); port 7009 has no entry (SK_PASS).
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void RunInstallsTheObjectsInitialInnerMaps(string engine)
    {
        string RunTo(string to) => Run((a, o, e) => BpfJit.Cli.Cli.Run(["run", .. a], o, e),
            Object("map_in_map_select"), "--proto", "tcp", "--from", "127.0.0.2:5000", "--to", to, "--engine", engine).Out;
        Assert.That(RunTo("127.0.0.1:7001"), Does.Contain("retval 0 (SK_DROP), no socket selected"));
        Assert.That(RunTo("127.0.0.1:7009"), Does.Contain("retval 1 (SK_PASS), no socket selected"));
    }

    [Test]
    public void VerifyReportsEachProgram()
    {
        var (code, output) = Run((a, o, e) => BpfJit.Cli.Cli.Run(["verify", .. a], o, e), Object("kfunc_calls"));
        Assert.That(code, Is.EqualTo(1), "a rejected program makes the verb's result negative, not bad input");
        Assert.That(output, Does.Contain("program task_lookup").And.Contain("2: (85) call kfunc#0").And.Contain("calling kernel function bpf_task_from_pid is not allowed"));
        Assert.That(output, Does.Contain("program plain").And.Contain("processed 6 insns"));
    }

    [Test]
    public void InspectAndDisasmNameKernelFunctionsAndInnerMaps()
    {
        var (code, json) = Run((a, o, e) => BpfJit.Cli.Cli.Run(["inspect", .. a], o, e), Object("kfunc_calls"), "--json");
        Assert.That(code, Is.Zero);
        using (var doc = System.Text.Json.JsonDocument.Parse(json))
        {
            var first = doc.RootElement.GetProperty("programs")[0];
            Assert.That(first.GetProperty("kernelFunctions").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { "bpf_rcu_read_lock", "bpf_rcu_read_unlock" }));
        }
        var (_, text) = Run((a, o, e) => BpfJit.Cli.Cli.Run(["disasm", .. a], o, e), Object("kfunc_calls"));
        Assert.That(text, Does.Contain("    1: call kfunc#1  ; kfunc bpf_rcu_read_unlock"));
        var (_, mim) = Run((a, o, e) => BpfJit.Cli.Cli.Run(["inspect", .. a], o, e), Object("map_in_map"), "--json");
        using var m = System.Text.Json.JsonDocument.Parse(mim);
        var outer = m.RootElement.GetProperty("maps").EnumerateArray().Single(e => e.GetProperty("name").GetString() == "outer");
        Assert.That(outer.GetProperty("innerMap").GetProperty("type").GetString(), Is.EqualTo("Array"));
        Assert.That(outer.GetProperty("initialInnerMaps").GetProperty("0").GetString(), Is.EqualTo("inner1"));
    }
}
