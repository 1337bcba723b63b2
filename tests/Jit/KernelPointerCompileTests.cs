using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Issue 16: the JIT compiled without the verifier's facts cannot tell which loads read a kernel object (the facts'
/// BPF_PROBE_MEM marks), so an unchecked compile of a program that loads, stores or calls through a kernel BTF pointer
/// is refused with a <see cref="BpfCompileException"/> at that instruction instead of reading BpfJit's own blocks raw;
/// a program that only tests or returns such a pointer, checked mode, and a compile with facts (KernelBtfReadTests)
/// still compile.
/// </summary>
[TestFixture]
public class KernelPointerCompileTests
{
    // Each program makes a kernel BTF pointer (after a NULL test of ctx->sk where it needs a socket) and uses it at
    // slot Use; the error names that slot and the call that made the pointer.
    static IEnumerable<TestCaseData> Cases()
    {
        const string sk = "ldxdw %r1, [%r1+0]\njeq %r1, 0, out\n";
        yield return new TestCaseData($"{sk}call {KernelHelpers.SkcToTcpSockId}\njeq %r0, 0, out\nldxw %r0, [%r0+4]\nout:\nmov %r0, 1\nexit",
            4, "bpf_skc_to_tcp_sock at instruction 2").SetName("load through bpf_skc_to_tcp_sock");
        yield return new TestCaseData($"{sk}call {KernelHelpers.SkcToTcpSockId}\nmov %r7, %r0\nadd %r7, 8\njeq %r0, 0, out\nldxb %r0, [%r7+0]\nout:\nmov %r0, 1\nexit",
            6, "bpf_skc_to_tcp_sock at instruction 2").SetName("load through a copy plus an offset");
        yield return new TestCaseData($"call {KernelHelpers.GetCurrentTaskBtfId}\nja next\nnext:\nldxw %r0, [%r0+8]\nmov %r0, 1\nexit",
            2, "bpf_get_current_task_btf at instruction 0").SetName("load through bpf_get_current_task_btf after a jump");
        yield return new TestCaseData($"call {KernelHelpers.GetCurrentTaskBtfId}\nstxdw [%r10-8], %r0\nmov %r0, 1\nexit",
            1, "bpf_get_current_task_btf at instruction 0").SetName("spill of bpf_get_current_task_btf");
        yield return new TestCaseData("kcall\nldxw %r0, [%r0+4]\nmov %r0, 1\nexit",
            1, "bpf_cast_to_kern_ctx at instruction 0").SetName("load through bpf_cast_to_kern_ctx");
    }

    const int KfuncMarker = 0x7ff0;

    static Instruction[] Assemble(string asm)
    {
        var code = MapPrograms.Assemble(asm.Replace("kcall", $"call {KfuncMarker}", StringComparison.Ordinal));
        for (int i = 0; i < code.Length; i++)
            if (code[i].Opcode == Op.Call && code[i].Imm == KfuncMarker)
                code[i] = code[i] with { Src = (byte)CallKind.Kfunc, Imm = KfuncTable.CastToKernCtxId };
        return code;
    }

    [TestCaseSource(nameof(Cases))]
    public void AnUncheckedCompileWithoutFactsIsRefusedAtTheUse(string asm, int use, string origin)
    {
        var code = Assemble(asm);
        var e = Assert.Throws<BpfCompileException>(() => JitCompiler.Compile(code, SkLookupHelpers.CreateTable()))!;
        Assert.That(e.Index, Is.EqualTo(use), e.Message);
        Assert.That(e.Message, Does.StartWith($"instruction {use} (").And.Contain(origin).And.Contain("verifier's facts"));
        // Through the hook's program type too: the load fails, typed, before any run.
        Assert.Throws<BpfCompileException>(() => SkLookupProgram.Load("kptr", code, JitEngine.Instance));
    }

    [TestCaseSource(nameof(Cases))]
    public void CheckedModeStillCompilesIt(string asm, int use, string origin) =>
        Assert.That(JitCompiler.Compile(Assemble(asm), SkLookupHelpers.CreateTable(), new JitOptions { Checked = true }).Entry, Is.Not.Null);

    /// <summary>A pointer that is only tested, compared or returned, or a register overwritten after it held one, is no use.</summary>
    [TestCase("call 158\nexit")]
    [TestCase("mov %r6, %r1\nkcall\nsub %r0, %r6\nexit")]
    [TestCase("call 158\nmov %r6, %r0\nmov %r6, %r10\nldxdw %r0, [%r6-8]\nexit")]
    [TestCase("call 158\njeq %r0, 0, out\nmov %r0, 0\nout:\nexit")]
    public void APointerNotUsedCompiles(string asm) =>
        Assert.That(JitCompiler.Compile(Assemble(asm), SkLookupHelpers.CreateTable()).Entry, Is.Not.Null);
}
