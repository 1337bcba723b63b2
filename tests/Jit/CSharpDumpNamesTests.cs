using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Jit;

/// <summary>
/// The C# dump reads in the eBPF registers: every local the emitter declares for a register is called r0..r10 (the
/// decompiler alone says num, num2, result, or renumbers r3 to r12), and an argument that its register outlives
/// is called r1_in.
/// </summary>
public class CSharpDumpNamesTests
{
    static string CSharp(string asm) => JitCompiler.Compile(Assembler.Assemble(asm), HelperTable.Bench()).GetCSharp();

    [Test]
    public void RegistersKeepTheirNames()
    {
        string cs = CSharp("""
            mov %r6, %r1
            mov %r7, 3
            add %r6, %r7
            ldxdw %r3, [%r10-8]
            add %r6, %r3
            mov %r0, %r6
            exit
            """);
        Assert.That(cs, Does.Contain("ulong r6 = r1;"), cs);
        Assert.That(cs, Does.Match(@"\br7\b"), cs);
        Assert.That(cs, Does.Match(@"\br3\b"), cs);
        Assert.That(cs, Does.Match(@"\br10\b"), cs);
        Assert.That(cs, Does.Not.Match(@"\bnum\d*\b"), cs);
        // No register number the program does not have (the decompiler's renumbering gave r11, r12, ...).
        Assert.That(Regex.Matches(cs, @"\br(\d+)\b").Select(m => int.Parse(m.Groups[1].Value)), Has.All.LessThanOrEqualTo(10), cs);
    }

    [Test]
    public void AWrittenArgumentRegisterIsTheRegisterAndTheArgumentIsItsValueIn()
    {
        string cs = CSharp("""
            mov %r6, %r1
            mov %r1, 5
            add %r6, %r1
            mov %r0, %r6
            exit
            """);
        Assert.That(cs, Does.Contain("ulong r1_in, ulong r2)"), cs);
        Assert.That(cs, Does.Contain("ulong r1 = r1_in;").And.Contain("ulong r6 = r1;").And.Contain("r1 = 5uL;"), cs);
    }
}
