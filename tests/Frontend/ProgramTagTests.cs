using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Loader;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Frontend;

/// <summary>
/// <see cref="ProgramTag"/> equals the tag the live kernel computes at BPF_PROG_LOAD for the same instructions
/// (bpf_prog_info.tag, what bpftool prints), for programs with and without map references (whose fds must not
/// matter). A kernel of another build that digests differently (before 6.18: SHA-1) is reported, not failed.
/// </summary>
[Category(KernelOracle.Category)]
public class ProgramTagTests
{
    [Test]
    public void KnownValueOfTheSmallestProgram()
    {
        // mov r0, 1; exit — the tag Linux 6.18.44 reported for it (BPF_OBJ_GET_INFO_BY_FD).
        Assert.That(ProgramTag.Compute(Assembler.Assemble("mov %r0, 1\nexit")), Is.EqualTo("b11459a0e11ca14c"));
        Assert.That(ProgramTag.ComputeSha1(Assembler.Assemble("mov %r0, 1\nexit")), Is.EqualTo("57cd311f2e27366b"));
    }

    [Test]
    public void MapFdsDoNotChangeTheTag()
    {
        var a = Assembler.Assemble("lddw %r1, 0\nmov %r0, 1\nexit");
        var withMap = a.ToArray();
        withMap[0] = withMap[0] with { Src = 1, Imm = 7 };
        var otherFd = a.ToArray();
        otherFd[0] = otherFd[0] with { Src = 1, Imm = 12 };
        Assert.That(ProgramTag.Compute(withMap), Is.EqualTo(ProgramTag.Compute(otherFd)));
        var value = withMap.ToArray();
        value[0] = value[0] with { Src = 2 };
        value[1] = value[1] with { Imm = 16 }; // the value offset is zeroed too, as the kernel does
        Assert.That(ProgramTag.Compute(value), Is.Not.EqualTo(ProgramTag.Compute(withMap)), "src 2 is digested with its src field");
        var plain = a.ToArray();
        plain[0] = plain[0] with { Imm = 7 };
        Assert.That(ProgramTag.Compute(plain), Is.Not.EqualTo(ProgramTag.Compute(a)), "a plain constant is digested");
    }

    [Test]
    public void TheDigestIsSha256AtEveryPaddingLength()
    {
        // ProgramTag digests with its own SHA-256 (not OpenSSL's, for the cold start): the framework's digest of the same
        // bytes, for programs of 0 to 40 slots (the padding's one- and two-block tails) and a large random one.
        var random = new Random(23);
        for (int n = 0; n <= 40; n++)
            AssertSha256(Enumerable.Range(0, n).Select(_ => new Instruction((byte)random.Next(0x100), (byte)random.Next(11), (byte)random.Next(11), (short)random.Next(), random.Next())).ToArray());
        AssertSha256(Enumerable.Range(0, 4097).Select(i => new Instruction(Op.Mov64Imm, 0, 0, 0, i * 7919)).ToArray());
    }

    static void AssertSha256(Instruction[] slots)
    {
        // Without ld_imm64 map references the digested bytes are the encoding itself.
        slots = slots.Select(s => s.Opcode == Op.LdImm64 ? s with { Opcode = Op.Mov64Imm } : s).ToArray();
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoder.Encode(slots)).AsSpan(0, 8));
        Assert.That(ProgramTag.Compute(slots), Is.EqualTo(expected), $"{slots.Length} slots");
    }

    static IEnumerable<string> Objects() => ["redir_port", "dispatcher", "redir_ip6"];

    [TestCaseSource(nameof(Objects))]
    public void TheKernelComputesTheSameTag(string name)
    {
        if (!KernelBpf.Available) Assert.Ignore($"the kernel oracle is not available: {BpfJit.Baselines.KernelBpf.UnavailableReason}");
        var spec = ObjectFile.Load(Corpus.ObjectPath(name));
        var program = spec.Programs.First(p => p.IsSupported);
        var fds = new List<int>();
        try
        {
            foreach (var m in spec.Maps)
            {
                int fd = KernelBpf.CreateMap((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, Math.Max(1, (int)m.MaxEntries), m.Flags);
                if (fd < 0) Assert.Ignore($"the kernel refused map {m.Name}: errno {-fd}");
                fds.Add(fd);
            }
            int prog = BpfJit.Baselines.KernelBpf.LoadProgram(program.Instructions, fds);
            try
            {
                string kernel = BpfJit.Baselines.KernelBpf.ProgramTag(prog);
                string ours = ProgramTag.Compute(program.Instructions);
                if (kernel == ProgramTag.ComputeSha1(program.Instructions) && kernel != ours)
                    KernelOracle.Differs(KernelOracle.RecordedRelease, $"{name}: this kernel digests with SHA-1 (before 6.18): {kernel}");
                else
                    Assert.That(ours, Is.EqualTo(kernel), $"{name}: bpftool's tag");
            }
            finally
            {
                KernelBpf.Close(prog);
            }
        }
        finally
        {
            foreach (int fd in fds) KernelBpf.Close(fd);
        }
    }
}
