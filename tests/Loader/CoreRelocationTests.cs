using BpfJit.Frontend;
using BpfJit.Frontend.Btf;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;

using L = BpfJit.Runtime.SkLookup.SkLookupLayout;

namespace BpfJit.Tests.Loader;

/// <summary>
/// CO-RE relocations are applied as libbpf applies them, against BpfJit's own target types (the UAPI
/// <c>struct bpf_sk_lookup</c>, <c>struct bpf_sock</c>, ...): a local view with another member order reads the real
/// fields, existence and size checks become constants, and a field the target types lack is refused naming the
/// instruction.
/// </summary>
[TestFixture]
public class CoreRelocationTests
{
    static string Object(string name) => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", name + ".o");

    [Test]
    public void FieldOffsetsExistenceAndSizesAreRelocated()
    {
        var p = ObjectFile.Load(Object("core_reloc")).Programs.Single();
        Assert.That(p.CoreRelocations.Select(c => (c.Kind, c.AccessString, c.InstructionOffset)), Is.EqualTo(new[]
        {
            (CoreRelocationKind.FieldExists, "0:3", 1),
            (CoreRelocationKind.FieldByteSize, "0:0", 3),
            (CoreRelocationKind.FieldByteOffset, "0:0", 5),
            (CoreRelocationKind.FieldByteOffset, "0:1", 7),
            (CoreRelocationKind.FieldByteOffset, "0:2", 10),
        }));
        var code = p.Instructions;
        Assert.Multiple(() =>
        {
            Assert.That(code[1].Imm, Is.EqualTo(0), "no_such_field does not exist in struct bpf_sk_lookup");
            Assert.That(code[3].Imm, Is.EqualTo(4), "local_port is 4 bytes");
            Assert.That(code[5].Offset, Is.EqualTo(60), "local_port: local offset 0, struct bpf_sk_lookup offset 60");
            Assert.That(code[7].Offset, Is.EqualTo(12), "protocol: 4 -> 12");
            Assert.That(code[10].Offset, Is.EqualTo(8), "family: 8 -> 8");
            Assert.That(p.Notes, Is.Empty);
        });
    }

    /// <summary>The relocated program runs with the right offsets on both engines: TCP to port 7001 drops, else it passes.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void TheRelocatedProgramReadsTheRealFields(string engine)
    {
        string RunTo(string proto, string to)
        {
            var o = new StringWriter();
            var e = new StringWriter();
            int code = BpfJit.Cli.Cli.Run(["run", Object("core_reloc"), "--proto", proto, "--from", "127.0.0.2:5000", "--to", to, "--engine", engine], o, e);
            Assert.That(code, Is.EqualTo(0), e.ToString());
            return o.ToString();
        }
        Assert.Multiple(() =>
        {
            Assert.That(RunTo("tcp", "127.0.0.1:7001"), Does.Contain("retval 0 (SK_DROP)"));
            Assert.That(RunTo("udp", "127.0.0.1:7001"), Does.Contain("retval 1 (SK_PASS)"));
            Assert.That(RunTo("tcp", "127.0.0.1:7002"), Does.Contain("retval 1 (SK_PASS)"));
        });
    }

    /// <summary>
    /// A field the target types lack: the instruction is poisoned as libbpf poisons it, and the verifier's rejection
    /// when it is reached names the relocation in one line with file, section and offset (libbpf's log fixup).
    /// </summary>
    [Test]
    public void AFieldTheTargetLacksRejectsItsProgramNamingTheInstruction()
    {
        var spec = ObjectFile.Load(Object("core_missing"));
        var p = spec.Programs.Single();
        const string Reason = "core_missing.o: section sk_lookup: offset 0x18: program core_missing: relo #1: byte_off [18] struct bpf_sk_lookup___missing (0:1): "
            + "failed to resolve CO-RE relocation: struct bpf_sk_lookup___missing.no_such_field is not in the target types";
        Assert.That(p.Instructions[3], Is.EqualTo(new Instruction(0x85, 0, 0, 0, ProgramSpec.CorePoisonHelper)));
        Assert.That(p.UnresolvedCoreRelocations[3], Does.EndWith(Reason));
        Assert.That(p.Instructions[1].Offset, Is.EqualTo(8), "the other relocation (family) is applied");
        var r = BpfJit.Verifier.ObjectVerification.Verify(spec, p, BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable());
        Assert.That((r.Accepted, r.ErrorInsn), Is.EqualTo((false, 3)));
        Assert.That(r.Error, Does.EndWith(Reason).And.Not.Contain("\n"));
        Assert.That(r.Log, Does.Contain("3: <invalid CO-RE relocation>\n").And.Contain(r.Error!));
        Assert.That(r.Log, Does.Not.Contain("unknown#"), "the poisoned call is not shown as a helper call");
        // The same on the path that verifies against live maps.
        var e = Assert.Throws<BpfJit.Verifier.BpfVerifierException>(() =>
            new BpfJit.Verifier.SkLookupProgramVerifier().VerifyWithFacts(p, [], BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable()))!;
        Assert.That(e.Result.Error, Is.EqualTo(r.Error));
    }

    [Test]
    public void TheTargetTypesAreTheRuntimesContextLayout()
    {
        // The embedded BTF must describe struct bpf_sk_lookup as the runtime lays it out.
        var btf = (BtfSpec)typeof(ObjectFile).Assembly.GetType("BpfJit.Frontend.Btf.CoreRelocator")!
            .GetProperty("Target")!.GetValue(null)!;
        var ctx = btf.FindByName("bpf_sk_lookup", BtfKind.Struct).Single();
        var offsets = ctx.Members.Where(m => m.Name.Length > 0).ToDictionary(m => m.Name, m => (int)(m.BitOffset / 8));
        Assert.That(offsets, Is.EqualTo(new Dictionary<string, int>
        {
            ["family"] = L.Family, ["protocol"] = L.Protocol, ["remote_ip4"] = L.RemoteIp4, ["remote_ip6"] = L.RemoteIp6,
            ["remote_port"] = L.RemotePort, ["local_ip4"] = L.LocalIp4, ["local_ip6"] = L.LocalIp6,
            ["local_port"] = L.LocalPort, ["ingress_ifindex"] = L.IngressIfindex,
        }));
        Assert.That(btf.Size(ctx.Id), Is.EqualTo((ulong)L.Size));
    }
}
