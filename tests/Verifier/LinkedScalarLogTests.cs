using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>The level-2 log prints a scalar linked with a constant delta as the kernel does: base id and signed delta.</summary>
[TestFixture]
public partial class LinkedScalarLogTests
{
    const string Program = "ldxw %r6, [%r1+60]\nmov %r8, %r6\nadd %r8, 5\nmov %r9, %r6\nsub32 %r9, 1\nmov %r0, 1\nexit";

    [GeneratedRegex(@"R8=scalar\(id=(\d+)\+5,")]
    private static partial Regex Plus64();

    [GeneratedRegex(@"R9=scalar\(id=(\d+)-1,")]
    private static partial Regex Minus32();

    /// <summary>r8 = r6 + 5 prints as <c>id=N+5</c> and w9 = w6 - 1 as <c>id=N-1</c>, with the same N.</summary>
    [Test]
    public void DeltaPrintsAfterTheBaseId()
    {
        var r = BpfJit.Verifier.Verifier.Verify(Assembler.Assemble(Program), new VerifierOptions { Helpers = SkLookupTestHelpers.Table, LogLevel = 2 });
        Assert.That(r.Accepted, Is.True, r.Log);
        var plus = Plus64().Match(r.Log);
        var minus = Minus32().Match(r.Log);
        Assert.That(plus.Success && minus.Success, Is.True, r.Log);
        Assert.That(minus.Groups[1].Value, Is.EqualTo(plus.Groups[1].Value));
    }

    /// <summary>The live kernel prints the same tokens for the same program.</summary>
    [Test]
    public void KernelPrintsTheSame()
    {
        KernelBpf.RequireAvailable();
        var k = KernelBpf.Load(Assembler.Assemble(Program), [], logLevel: 2);
        Assert.That(k.Accepted, Is.True, k.Log);
        Assert.That(Plus64().IsMatch(k.Log) && Minus32().IsMatch(k.Log), Is.True, k.Log);
    }
}
