using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Issue 16, part 4 (docs/jit.md, "Runtime guards"): the verifier marks every load, store or atomic whose base
/// has a variable offset on some path (<see cref="InsnFacts.VariableOffset"/>), the default JIT guards exactly
/// those, a correct program runs as before, and a program whose variable offset leaves its region (the facts
/// of a verifier that got the bounds wrong) faults with <see cref="BpfFaultException"/> instead of touching memory.
/// </summary>
[TestFixture, NonParallelizable]
public class RuntimeGuardTests
{
    static readonly HelperTable s_helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
    const int Port = 8008;

    // r3 = local_port & 7; load the byte at r10 - 16 + r3 (slot 9), store it at r10 - 8 + r3 (slot 10), read it back (slot 11).
    static readonly string s_stackProgram = $"""
        lddw %r4, 0x0102030405060708
        stxdw [%r10-16], %r4
        stdw [%r10-8], 0
        ldxw %r3, [%r1+{SkLookupLayout.LocalPort}]
        and %r3, 7
        mov %r2, %r10
        add %r2, -16
        add %r2, %r3
        ldxb %r0, [%r2+0]
        stxb [%r2+8], %r0
        ldxb %r0, [%r2+8]
        and %r0, 1
        exit
        """;

    static int SlotOf(Instruction[] code, Func<Instruction, bool> match) => Array.FindIndex(code, i => match(i));

    static uint RunAt(BpfEntry entry, int port)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{port}"));
        return (uint)entry((ulong)ctx.Address, 0);
    }

    [Test]
    public void TheVerifierMarksVariableOffsetAccessesOnly()
    {
        var code = Assembler.Assemble(s_stackProgram);
        var result = BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = s_helpers });
        Assert.That(result.Accepted, Is.True, result.Error + "\n" + result.Log);
        if (KernelBpf.Available) Assert.That(KernelBpf.Load(code, []).Accepted, Is.True, "the kernel accepts it too");
        var marked = Enumerable.Range(0, code.Length).Where(i => result.Facts[i].VariableOffset).ToArray();
        // The three accesses through r2 (r10 - 16 + r3); the r10 and ctx accesses are constant.
        Assert.That(marked, Is.EqualTo(new[] { 9, 10, 11 }));
        var facts = result.ToProgramFacts(code);
        Assert.That(facts[11].VariableOffset && !facts[2].VariableOffset && !facts[4].VariableOffset, Is.True);
    }

    [Test]
    public void AVerifiedVariableOffsetAccessIsGuardedAndRunsAsTheInterpreter()
    {
        var code = Assembler.Assemble(s_stackProgram);
        var facts = BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = s_helpers }).ToProgramFacts(code);
        var jit = JitCompiler.Compile(code, s_helpers, null, facts);
        string il = jit.GetIlListing();
        Assert.That(il, Does.Contain("guard: variable offset, checked against the stack frames"));
        Assert.That(il.Split("guard: variable offset").Length - 1, Is.EqualTo(3), "the constant-offset accesses stay unguarded");
        var interpreter = InterpreterEngine.Instance.Prepare(code, s_helpers);
        foreach (int port in new[] { 8000, 8003, 8007, 80 })
            Assert.That(RunAt(jit.Entry, port), Is.EqualTo(RunAt(interpreter, port)), $"port {port}");
    }

    [Test]
    public void AVerifiedVariableOffsetIntoAMapValueIsGuardedAgainstThatMap()
    {
        using var array = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "values");
        var program = MapPrograms.Assemble($"""
            mov %r6, %r1
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, miss
            ldxw %r3, [%r6+{SkLookupLayout.LocalPort}]
            and %r3, 7
            add %r0, %r3
            stxb [%r0+8], %r3
            ldxb %r0, [%r0+8]
            and %r0, 1
            exit
            miss:
            mov %r0, 0
            exit
            """);
        var infos = new[] { new MapInfo(array.Name, array.Type, array.KeySize, array.ValueSize, array.MaxEntries, array.Flags) };
        var result = BpfJit.Verifier.Verifier.Verify(program, new VerifierOptions { Helpers = s_helpers, Maps = infos });
        Assert.That(result.Accepted, Is.True, result.Error + "\n" + result.Log);
        var facts = result.ToProgramFacts(program, [array]);
        var code = ProgramBinder.Bind(program, [array]).Code;
        var jit = JitCompiler.Compile(code, s_helpers, null, facts);
        Assert.That(jit.GetIlListing(), Does.Contain("guard: variable offset into a value of map values"));
        MapEpoch.Enter();
        try
        {
            Assert.That(RunAt(jit.Entry, 8005), Is.EqualTo(1u));
            Assert.That(RunAt(jit.Entry, 8006), Is.EqualTo(0u));
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>
    /// Made-up facts of a verifier that got a variable offset's bounds wrong: the access (slot 6) leaves the
    /// stack frame below or above, or the map value; the default JIT faults there, the hook drops that lookup
    /// and serves the next. Without the guard the stores would write outside the frame.
    /// </summary>
    [TestCase("sub", "stb [%r3+0], 1", "store")]
    [TestCase("add", "ldxb %r0, [%r3+0]", "load")]
    [TestCase("add", "lock add32 [%r3+0], %r6", "atomic")]
    public void AVariableOffsetOutsideTheFrameFaultsOnTheJit(string op, string access, string kind)
    {
        // r6 = local_port; r3 = r10 -/+ r6 (8008 bytes away from the frame); the access; r0 = 1.
        var code = MapPrograms.Assemble($"""
            ldxw %r6, [%r1+{SkLookupLayout.LocalPort}]
            jne %r6, {Port}, pass
            stdw [%r10-8], 0
            mov %r3, %r10
            {op} %r3, %r6
            and %r3, -8
            {access}
            pass:
            mov %r0, 1
            exit
            """);
        const int slot = 6;
        var slots = Enumerable.Range(0, code.Length).Select(i => i == slot ? new SlotFacts { VariableOffset = true } : SlotFacts.Unknown).ToList();
        var facts = new ProgramFacts(code, slots, mayReadUninitStack: true, stackDepths: [8]);
        AssertFaults(code, facts, slot, kind);
    }

    /// <summary>
    /// The same made-up fact inside a bpf_loop callback: the callback is compiled without specialisation, but
    /// its variable-offset access is guarded as the main program's are (a load 8008 bytes below its frame).
    /// </summary>
    [Test]
    public void AVariableOffsetOutsideTheFrameFaultsInACallbackOnTheJit()
    {
        var code = MapPrograms.Assemble($"""
            ldxw %r6, [%r1+{SkLookupLayout.LocalPort}]
            jne %r6, {Port}, pass
            mov %r1, 1
            ldfunc %r2, callback
            mov %r3, %r6
            mov %r4, 0
            call 181
            pass:
            mov %r0, 1
            exit
            callback:
            stdw [%r10-8], 0
            mov %r3, %r10
            sub %r3, %r2
            and %r3, -8
            ldxb %r0, [%r3+0]
            mov %r0, 0
            exit
            """);
        int slot = SlotOf(code, i => i.Class == InstructionClass.Ldx && i.Src == 3);
        var slots = Enumerable.Range(0, code.Length).Select(i => i == slot ? new SlotFacts { VariableOffset = true } : SlotFacts.Unknown).ToList();
        var facts = new ProgramFacts(code, slots, mayReadUninitStack: true, stackDepths: [0, 8]);
        AssertFaults(code, facts, slot, "load");
    }

    [Test]
    public void AVariableOffsetPastAMapValueFaultsOnTheJit()
    {
        using var array = MapFactory.Create(MapType.Array, 4, 8, 1, 0, "values");
        var code = ProgramBinder.Bind(MapPrograms.Assemble($"""
            ldxw %r6, [%r1+{SkLookupLayout.LocalPort}]
            jne %r6, {Port}, pass
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, pass
            add %r0, %r6
            stxb [%r0+0], %r6
            pass:
            mov %r0, 1
            exit
            """), [array]).Code;
        int slot = SlotOf(code, i => i.Class == InstructionClass.Stx);
        var slots = Enumerable.Range(0, code.Length).Select(i => i == slot ? new SlotFacts { VariableOffset = true, MemMap = array } : SlotFacts.Unknown).ToList();
        var facts = new ProgramFacts(code, slots, mayReadUninitStack: true, stackDepths: [8]);
        AssertFaults(code, facts, slot, "store");
    }

    static void AssertFaults(Instruction[] code, ProgramFacts facts, int slot, string access)
    {
        using var ns = new NetNamespace();
        var other = Tcp(ns, "127.0.0.1:9009");
        Tcp(ns, $"127.0.0.1:{Port}");
        var jit = SkLookupProgram.Load("wrong-bounds", code, JitEngine.Instance, s_helpers, facts);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{Port}"));
        MapEpoch.Enter();
        try
        {
            var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => jit.Run(ctx.Address)) as BpfFaultException;
            Assert.That(e!.Index, Is.EqualTo(slot));
            Assert.That(e.Access, Is.EqualTo(access));
            Assert.That(e.Message, Does.Contain($"instruction {slot} ("));
        }
        finally
        {
            MapEpoch.Exit();
        }
        ns.SkLookup.Attach(jit);
        Assert.That(ns.Lookup(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{Port}")).Outcome, Is.EqualTo(LookupOutcome.Refused));
        var next = ns.Lookup(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:9009"));
        Assert.That(next.Socket, Is.SameAs(other));
        Assert.That(jit.FaultCount, Is.EqualTo(2));
    }
}
