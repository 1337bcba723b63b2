using System.Runtime.InteropServices;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// The stack block is a struct local (<see cref="JitStackBlock"/>), not a localloc buffer: every size a
/// program can need has a type that holds it, and the block is 8-byte aligned in the running method.
/// </summary>
[TestFixture]
public class StackBlockTests
{
    [Test]
    public void EveryBlockSizeHasTheSmallestTypeThatHoldsIt()
    {
        for (int bytes = 1; bytes <= JitStackBlock.MaxBytes; bytes++)
        {
            int size = Marshal.SizeOf(JitStackBlock.For(bytes));
            Assert.That(size, Is.GreaterThanOrEqualTo(bytes), $"{bytes} bytes");
            Assert.That(size == 8 || size / 2 < bytes, $"{bytes} bytes got a {size}-byte block: a smaller one holds it");
        }
        // eight frames of 512 bytes and their saved-frame records: the largest block a program gets
        Assert.That(Marshal.SizeOf(JitStackBlock.For(BpfAbi.MaxCallFrames * (BpfAbi.StackSize + 40))), Is.LessThanOrEqualTo(JitStackBlock.MaxBytes));
        Assert.Throws<ArgumentOutOfRangeException>(() => JitStackBlock.For(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => JitStackBlock.For(JitStackBlock.MaxBytes + 1));
    }

    /// <summary>r10 (and so every eBPF stack slot) is 8-byte aligned, with and without local calls.</summary>
    [TestCase("mov %r0, %r10\nexit")]
    [TestCase("stdw [%r10-8], 1\nmov %r0, %r10\nexit")]
    [TestCase("call local f\nmov %r0, %r10\nexit\nf:\nstdw [%r10-8], 1\nmov %r0, %r10\nexit")]
    public void TheStackIsEightByteAligned(string source)
    {
        var compiled = JitCompiler.Compile(Assembler.Assemble(source), HelperTable.Bench());
        for (int i = 0; i < 3; i++)
            Assert.That(compiled.Run(0, 0) % 8, Is.Zero, compiled.GetIlListing());
        Assert.That(compiled.GetIlListing(), Does.Contain("ldloca.s block").And.Not.Contain("localloc"));
    }
}
