using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>The JIT's public API: options, frames, helpers of any visibility, errors.</summary>
[TestFixture]
public class JitApiTests
{
    static ulong Triple(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r1 * 3;   // private: needs skipped visibility checks

    [Test]
    public void NonPublicHelperIsCalled()
    {
        var helpers = new HelperTable().Add(new Helper(7, "triple", Triple));
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r1, 14\ncall 7\nexit"), helpers);
        Assert.That(compiled.Run(), Is.EqualTo(42));
    }

    [Test]
    public void RunAndEntryAgree()
    {
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r0, %r1\nadd %r0, %r2\nexit"), HelperTable.Bench());
        Assert.That(compiled.Run(40, 2), Is.EqualTo(42));
        Assert.That(compiled.Entry(40, 2), Is.EqualTo(42));
        Assert.That(JitEngine.Instance.Name, Is.EqualTo("jit"));
    }

    [Test]
    public void FramesFollowTheProgram()
    {
        var noStack = JitCompiler.Compile(Assembler.Assemble("mov %r0, 1\nexit"), HelperTable.Bench());
        Assert.That(noStack.StackFrames, Is.EqualTo(0));
        // r10 copied: the stack can escape, so it is a block in memory (a private one is held in locals, StackSlotTests).
        var oneFrame = JitCompiler.Compile(Assembler.Assemble("mov %r9, %r10\nstdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit"), HelperTable.Bench());
        Assert.That(oneFrame.StackFrames, Is.EqualTo(1));
        var nested = JitCompiler.Compile(Assembler.Assemble(
            "stdw [%r10-8], 1\ncall local f\nexit\nf: call local g\nexit\ng: mov %r0, 3\nexit"), HelperTable.Bench());
        Assert.That(nested.StackFrames, Is.EqualTo(3));
        Assert.That(nested.ChecksCallDepth, Is.False, "an acyclic call graph of depth 3 needs no run-time check");
        Assert.That(nested.Run(), Is.EqualTo(3));
        var recursive = JitCompiler.Compile(Assembler.Assemble("stdw [%r10-8], 1\ncall local f\nexit\nf: call local f\nexit"), HelperTable.Bench());
        Assert.That(recursive.StackFrames, Is.EqualTo(BpfAbi.MaxCallFrames));
        Assert.That(recursive.ChecksCallDepth, Is.True);
        var e = Assert.Throws<BpfRuntimeException>(() => recursive.Run());
        Assert.That(e!.Message, Is.EqualTo("instruction 3: call stack overflow: more than 8 frames"));
    }

    [Test]
    public void ZeroStackOffStillRuns()
    {
        var options = JitOptions.Default with { ZeroStack = false };
        // r10 copied: the stack is a block in memory (a private one is held in locals, StackSlotTests).
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r9, %r10\nstdw [%r10-8], 5\nldxdw %r0, [%r10-8]\nexit"), HelperTable.Bench(), options);
        Assert.That(compiled.Run(), Is.EqualTo(5));
        Assert.That(compiled.Options.ZeroStack, Is.False);
        Assert.That(compiled.GetIlListing(), Does.Not.Contain("initblk"));
        Assert.That(JitCompiler.Compile(Assembler.Assemble("mov %r9, %r10\nstdw [%r10-8], 5\nexit"), HelperTable.Bench()).GetIlListing(), Does.Contain("initblk"));
    }

    [Test]
    public void WithoutProbeTheFirstRunCompiles()
    {
        var options = JitOptions.Default with { ProbeOnCompile = false };
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r0, 9\nexit"), HelperTable.Bench(), options);
        Assert.That(compiled.Run(), Is.EqualTo(9));
        Assert.That(compiled.GetIlListing(), Does.Not.Contain("IsProbe"));
    }

    [Test]
    public void RejectsWhatTheInterpreterRejects()
    {
        var e = Assert.Throws<BpfRuntimeException>(() => JitCompiler.Compile(Assembler.Assemble("call 99\nexit"), HelperTable.Bench()));
        Assert.That(e!.Message, Is.EqualTo("instruction 0: invalid func unknown#99"));
        Assert.Throws<BpfRuntimeException>(() => JitCompiler.Compile([], HelperTable.Bench()));
    }

    [Test]
    public void CompileCopiesTheProgram()
    {
        var program = Assembler.Assemble("mov %r0, 1\nexit");
        var compiled = JitCompiler.Compile(program, HelperTable.Bench());
        program[0] = program[0] with { Imm = 2 };
        Assert.That(compiled.Run(), Is.EqualTo(1));
        Assert.That(compiled.Program[0].Imm, Is.EqualTo(1));
    }
}
