using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Runtime;

/// <summary>What every engine refuses before running, and run-time limits, on every engine.</summary>
public class ProgramChecksTests
{
    static IEnumerable<string> EngineNames => Engines.Names;

    [TestCase("call 99\nexit", 0, "invalid func unknown#99")]
    [TestCase("ja +5\nexit", 0, "jump out of range")]
    [TestCase("mov %r0, 0", 0, "the last instruction must be exit")]
    [TestCase("ja +1\nlddw %r0, 1\nexit", 0, "jump into the middle of ld_imm64")]
    public void RefusedBeforeRunning(string source, int index, string reason)
    {
        foreach (var name in EngineNames)
        {
            var e = Assert.Throws<BpfRuntimeException>(() => Engines.Get(name).Prepare(Assembler.Assemble(source), HelperTable.Conformance()), name)!;
            Assert.That(e.Index, Is.EqualTo(index), name);
            Assert.That(e.Message, Does.Contain(reason), name);
        }
    }

    [Test]
    public void UnboundMapReferenceIsRefused()
    {
        var program = new[]
        {
            new Instruction(Op.LdImm64, 1, (byte)Ld64Source.MapIdx, 0, 0), new Instruction(0, 0, 0, 0, 0),
            new Instruction(0xb7, 0, 0, 0, 0), new Instruction(Op.Exit, 0, 0, 0, 0),
        };
        foreach (var name in EngineNames)
        {
            var e = Assert.Throws<BpfRuntimeException>(() => Engines.Get(name).Prepare(program, new HelperTable()), name)!;
            Assert.That(e.Message, Does.Contain("not bound"), name);
        }
    }

    [Test]
    public void RecursionStopsAtEightFrames([ValueSource(nameof(EngineNames))] string engine)
    {
        // f calls itself forever; the ninth frame is refused with a runtime error, not a host stack overflow.
        var entry = Engines.Get(engine).Prepare(Assembler.Assemble("""
            call local f
            exit
            f:
            call local f
            exit
            """), new HelperTable());
        var e = Assert.Throws<BpfRuntimeException>(() => entry(0, 0))!;
        Assert.That(e.Message, Does.Contain("call stack overflow"));
    }

    [Test]
    public void SevenNestedCallsRunAndPreserveCalleeSavedRegisters([ValueSource(nameof(EngineNames))] string engine)
    {
        var sb = new System.Text.StringBuilder("mov %r6, 6\ncall local f1\nadd %r0, %r6\nexit\n");
        for (int i = 1; i <= 7; i++)
        {
            sb.Append($"f{i}:\nmov %r6, {100 * i}\nstxdw [%r10-8], %r6\n");
            sb.Append(i < 7 ? $"call local f{i + 1}\n" : "mov %r0, 0\n");
            sb.Append($"ldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit\n");
        }
        var entry = Engines.Get(engine).Prepare(Assembler.Assemble(sb.ToString()), new HelperTable());
        // Each frame adds its own stack value (100+...+700) and the caller's r6 (6) survives.
        Assert.That(entry(0, 0), Is.EqualTo(2800UL + 6));
    }

    [Test]
    public void CallxToUnknownHelperFailsAtRunTime([ValueSource(nameof(EngineNames))] string engine)
    {
        var entry = Engines.Get(engine).Prepare(Assembler.Assemble("mov %r2, 77\ncall %r2\nexit"), HelperTable.Conformance());
        var e = Assert.Throws<BpfRuntimeException>(() => entry(0, 0))!;
        Assert.That(e.Message, Does.Contain("callx to unknown helper 77"));
    }

    [Test]
    public void UnwindFromANestedFrameEndsTheWholeProgram([ValueSource(nameof(EngineNames))] string engine)
    {
        var entry = Engines.Get(engine).Prepare(Assembler.Assemble("""
            call local f
            mov %r0, 9
            exit
            f:
            mov %r1, 0
            call 5
            mov %r0, 7
            exit
            """), HelperTable.Conformance());
        Assert.That(entry(0, 0), Is.EqualTo(0UL));
    }

    [Test]
    public void EachFrameHasItsOwnStack([ValueSource(nameof(EngineNames))] string engine)
    {
        var entry = Engines.Get(engine).Prepare(Assembler.Assemble("""
            mov %r1, 11
            stxdw [%r10-8], %r1
            call local f
            ldxdw %r0, [%r10-8]
            exit
            f:
            mov %r1, 22
            stxdw [%r10-8], %r1
            exit
            """), new HelperTable());
        Assert.That(entry(0, 0), Is.EqualTo(11UL));
    }
}
