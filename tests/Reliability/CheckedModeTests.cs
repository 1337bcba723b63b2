using System.Runtime.InteropServices;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Conformance;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Checked mode (<see cref="JitOptions.Checked"/>): programs the verifier rejects, forced through the
/// JIT without verification, fault with <see cref="BpfCheckedModeException"/> before touching memory;
/// every legitimate access (context, stack, map values, socket views, ring-buffer records, a callback
/// reaching its caller's stack) passes; the conformance suite and every scenario pass in checked mode.
/// </summary>
[TestFixture]
public unsafe class CheckedModeTests
{
    static readonly JitEngine s_checked = new(new JitOptions { Checked = true });

    /// <summary>A 256-byte native buffer whose first 72 bytes are registered as a context block.</summary>
    sealed class Guarded : IDisposable
    {
        public readonly byte* Block = (byte*)NativeMemory.AllocZeroed(256);
        public Guarded() => MemoryRegions.Register((ulong)Block, 72, MemoryRegionKind.Context);
        public void Dispose()
        {
            MemoryRegions.Unregister((ulong)Block);
            NativeMemory.Free(Block);
        }
    }

    static BpfCheckedModeException Fault(string asm, Guarded ctx, params BpfMap[] maps)
    {
        var entry = s_checked.Prepare(MapPrograms.Assemble(asm) is var code && maps.Length > 0 ? ProgramBinder.Bind(code, maps).Code : code, KernelHelpers.Table());
        return Assert.Throws<BpfCheckedModeException>(() => MapPrograms.Run(entry, (ulong)ctx.Block))!;
    }

    [Test]
    public void ALoadPastTheContextFaultsAndNamesTheInstructionAndRegion()
    {
        using var ctx = new Guarded();
        var e = Fault("mov %r0, 0\nldxw %r0, [%r1+72]\nexit", ctx);
        Assert.That(e.Index, Is.EqualTo(1));
        Assert.That(e.Size, Is.EqualTo(4));
        Assert.That(e.Address, Is.EqualTo((ulong)ctx.Block + 72));
        Assert.That(e.Access, Is.EqualTo("load"));
        Assert.That(e.Message, Does.StartWith("instruction 1 (").And.Contain("r0 = *(u32 *)(r1 + 72)").And.Contain("nearest region: context").And.Contain("0 byte(s) past its end"));
    }

    [Test]
    public void AStorePastTheContextFaultsBeforeWriting()
    {
        using var ctx = new Guarded();
        var e = Fault("stdw [%r1+100], -1\nmov %r0, 0\nexit", ctx);
        Assert.That(e.Access, Is.EqualTo("store"));
        Assert.That(new ReadOnlySpan<byte>(ctx.Block + 100, 8).ContainsAnyExcept((byte)0), Is.False, "the store did not happen");
    }

    [Test]
    public void AnAccessStraddlingTheEndOfTheContextFaults()
    {
        using var ctx = new Guarded();
        var e = Fault("ldxdw %r0, [%r1+68]\nexit", ctx);
        Assert.That(e.Nearest, Does.Contain("runs past its end"));
    }

    [Test]
    public void AnAtomicOutsideTheStackFaultsBeforeWriting()
    {
        using var ctx = new Guarded();
        *(ulong*)(ctx.Block + 128) = 5;
        var e = Fault("mov %r2, 1\nlock add [%r1+128], %r2\nmov %r0, 0\nexit", ctx);
        Assert.That(e.Access, Is.EqualTo("atomic"));
        Assert.That(*(ulong*)(ctx.Block + 128), Is.EqualTo(5UL));
    }

    [Test]
    public void StackAccessesBelowTheFrameFault()
    {
        using var ctx = new Guarded();
        var e = Fault("stdw [%r10-8], 1\nldxdw %r0, [%r10-520]\nexit", ctx);
        Assert.That(e.Index, Is.EqualTo(1));
        Assert.That(e.Nearest, Does.Contain("stack"));
        Fault("ldxw %r0, [%r10+0]\nexit", ctx);
    }

    [Test]
    public void AMapValueOverrunFaultsAndAnUncheckedNullLookupFaults()
    {
        using var ctx = new Guarded();
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "h");
        map.Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(42UL));
        const string lookup = "stw [%r10-4], {0}\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, 0\ncall 1\n";
        // The value is 8 bytes: [+0, 8) is fine, +8 is not.
        Assert.That(MapPrograms.Run(s_checked.Prepare(ProgramBinder.Bind(MapPrograms.Assemble(string.Format(lookup, 1) + "ldxdw %r0, [%r0+0]\nexit"), [map]).Code, KernelHelpers.Table()), (ulong)ctx.Block), Is.EqualTo(42UL));
        var e = Fault(string.Format(lookup, 1) + "ldxw %r0, [%r0+8]\nexit", ctx, map);
        Assert.That(e.Nearest, Does.Contain("value of Hash map 'h'"));
        // A missing key: the unchecked NULL is dereferenced.
        e = Fault(string.Format(lookup, 3) + "ldxb %r0, [%r0+0]\nexit", ctx, map);
        Assert.That(e.Address, Is.Zero);
    }

    /// <summary>
    /// Found by the program fuzzer (seed 2, program 3010): hash elements lie 64 bytes apart, and the check
    /// once took the first value an address was near (an overrun of the previous element) for the answer.
    /// </summary>
    [Test]
    public void EveryByteOfEveryHashValueIsReachable()
    {
        using var ctx = new Guarded();
        using var map = MapFactory.Create(MapType.Hash, 4, 16, 64, 0, "h");
        for (uint k = 0; k < 64; k++) map.Update(BitConverter.GetBytes(k), new byte[16]);
        foreach (var (size, offset) in new[] { ("b", 0), ("w", 0), ("dw", 8), ("b", 15) })
        {
            var entry = s_checked.Prepare(ProgramBinder.Bind(MapPrograms.Assemble($"ldxw %r6, [%r1+0]\nstw [%r10-4], 0\nstxw [%r10-4], %r6\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, 0\ncall 1\njeq %r0, 0, out\nldx{size} %r0, [%r0+{offset}]\nout:\nexit"), [map]).Code, KernelHelpers.Table());
            for (uint k = 0; k < 64; k++)
            {
                *(uint*)ctx.Block = k;
                Assert.DoesNotThrow(() => MapPrograms.Run(entry, (ulong)ctx.Block), $"key {k}, ldx{size} at +{offset}");
            }
        }
    }

    /// <summary>
    /// Found by the program fuzzer (seed 20261125, program 5046): a program may read a value it looked up
    /// after replacing or deleting that element (the kernel's RCU keeps it); the retired element is
    /// still a region until the epoch frees it.
    /// </summary>
    [TestCase(2, TestName = "AValueReplacedByTheProgramStaysReadable")]
    [TestCase(3, TestName = "AValueDeletedByTheProgramStaysReadable")]
    public void AValueRetiredByTheProgramStaysReadable(int helper)
    {
        using var ctx = new Guarded();
        using var map = MapFactory.Create(MapType.Hash, 4, 16, 4, 0, "h");
        map.Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(42UL).Concat(new byte[8]).ToArray());
        string asm = $"""
            stw [%r10-4], 1
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, out
            mov %r7, %r0
            stdw [%r10-24], 7
            stdw [%r10-16], 7
            ldmap %r1, 0
            mov %r2, %r10
            add %r2, -4
            mov %r3, %r10
            add %r3, -24
            mov %r4, 0
            call {helper}
            ldxdw %r0, [%r7+0]
            out:
            exit
            """;
        var entry = s_checked.Prepare(ProgramBinder.Bind(MapPrograms.Assemble(asm), [map]).Code, KernelHelpers.Table());
        Assert.That(MapPrograms.Run(entry, (ulong)ctx.Block), Is.EqualTo(42UL), "the old value, still readable");
        MapEpoch.Collect();
    }

    [Test]
    public void LegitimateAccessesPass()
    {
        var ns = new NetNamespace();
        var listener = Tcp(ns, "127.0.0.1:7100");
        using var sockmap = (BpfJit.Runtime.Sockets.SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 2, 0, "s");
        using var array = MapFactory.Create(MapType.Array, 4, 12, 2, 0, "a");
        using var ring = MapFactory.Create(MapType.RingBuf, 0, 0, 4096, 0, "rb");
        using var lpm = MapFactory.Create(MapType.LpmTrie, 8, 8, 4, 1, "lpm");
        lpm.Update([8, 0, 0, 0, 10, 0, 0, 0], BitConverter.GetBytes(7UL));
        Assert.That(sockmap.Update(0, listener), Is.Zero);
        string asm = """
            mov %r6, %r1
            ldxw %r7, [%r6+60]
            ldxb %r7, [%r6+71]
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 1
            call 1
            jeq %r0, 0, out
            stw [%r0+8], 9
            lock add32 [%r0+8], %r7
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, out
            mov %r8, %r0
            ldxw %r7, [%r8+76]
            mov %r1, %r6
            mov %r2, %r8
            mov %r3, 0
            call 124
            mov %r1, %r8
            call 86
            ldmap %r1, 2
            mov %r2, 16
            mov %r3, 0
            call 131
            jeq %r0, 0, out
            stdw [%r0+8], 1
            mov %r1, %r0
            mov %r2, 0
            call 132
            stw [%r10-8], 8
            stw [%r10-4], 10
            mov %r2, %r10
            add %r2, -8
            ldmap %r1, 3
            call 1
            jeq %r0, 0, out
            ldxdw %r0, [%r0+0]
            mov %r1, 2
            ldfunc %r2, cb
            mov %r3, %r10
            add %r3, -16
            mov %r4, 0
            call 181
            mov %r0, 1
            out:
            exit
            cb:
            ldxdw %r0, [%r2+0]
            mov %r0, 0
            exit
            """;
        var code = ProgramBinder.Bind(MapPrograms.Assemble(asm), [sockmap, array, ring, lpm]).Code;
        var program = SkLookupProgram.Load("all", code, s_checked);
        var result = SkLookupTestRun.Run(program, TestRunRequest.WithContext(TcpContext()));
        Assert.That(result.Error, Is.Zero);
        Assert.That(result.Retval, Is.EqualTo(1u), "the program reached its end");
        Assert.That(((RingBufMap)ring).Consume(_ => { }), Is.EqualTo(1));
        listener.Close();
    }

    /// <summary>
    /// Inline <c>asm</c> programs of scenario files are verified like object programs: one that reads past
    /// the context block is refused when the scenario is built. The same code forced through the low-level
    /// <c>SkLookupProgram.Load</c> (which runs what it is given) faults in checked mode.
    /// </summary>
    [Test]
    public void AScenarioProgramReadingPastTheContextIsRefusedAndFaultsInCheckedMode()
    {
        string file = Path.Combine(Path.GetTempPath(), $"bpfjit-checked-{Environment.ProcessId}.json");
        File.WriteAllText(file, """
            {"programs": {"p": {"asm": ["ldxw %r0, [%r1+200]", "mov %r0, 1", "exit"]}}, "attach": ["p"],
             "sockets": [{"name": "A", "proto": "tcp", "bind": "127.0.0.1:8008", "state": "listen"}],
             "lookups": [{"proto": "tcp", "from": "127.0.0.2:1", "to": "127.0.0.1:8008", "expect": "A"}]}
            """);
        try
        {
            var refused = Assert.Catch<BpfException>(() => ScenarioBuilder.Build(file, JitEngine.Instance).Dispose())!;
            Assert.That(refused.Message, Does.Contain("invalid bpf_context access off=200 size=4"));
        }
        finally
        {
            File.Delete(file);
        }
        var program = SkLookupProgram.Load("p", MapPrograms.Assemble("ldxw %r0, [%r1+200]\nmov %r0, 1\nexit"), s_checked);
        using var ctx = new Guarded();   // 256 bytes behind a 72-byte context: the read stays in memory the test owns
        var e = Assert.Throws<BpfCheckedModeException>(() => program.Run((nint)ctx.Block))!;
        Assert.That(e.Message, Does.Contain("instruction 0").And.Contain("nearest region: context"));
    }

    /// <summary>
    /// With the verifier's facts, an access the verifier proved goes to one map's value is held to that map:
    /// the same code bound to another map (facts of program A, run with map B) faults, although B's value is
    /// live memory the plain check would accept.
    /// </summary>
    [Test]
    public void WithFactsAMapValueAccessMustBeAValueOfTheVerifiedMap()
    {
        using var a = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "a");
        using var b = MapFactory.Create(MapType.Hash, 4, 8, 4, 0, "b");
        a.Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(11UL));
        b.Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(22UL));
        var helpers = SkLookupHelpers.CreateTable();
        var program = MapPrograms.Assemble("""
            stw [%r10-4], 1
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, out
            ldxdw %r0, [%r0+0]
            jgt %r0, 1, one
            out:
            mov %r0, 0
            exit
            one:
            mov %r0, 1
            exit
            """);
        var infos = new[] { a }.Select(m => new BpfJit.Verifier.MapInfo(m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags)).ToList();
        var result = BpfJit.Verifier.Verifier.Verify(program, new BpfJit.Verifier.VerifierOptions { Helpers = helpers, Maps = infos });
        Assert.That(result.Accepted, Is.True, result.Log);
        Assert.That(result.Facts[7].MemMap, Is.EqualTo(0), "the load at 7 (after the two-slot ldmap) reads a value of map 0 on every path");
        var facts = BpfJit.Verifier.ProgramFactsBuilder.ToProgramFacts(result, program, [a]);
        Assert.That(facts[7].MemMap, Is.SameAs(a));

        using var ctx = new Guarded();
        var right = s_checked.Prepare(ProgramBinder.Bind(program, [a]).Code, helpers, facts);
        Assert.That(MapPrograms.Run(right, (ulong)ctx.Block), Is.EqualTo(1UL), "map a's value passes the check");
        // The facts of the call at 5 name map a too, which would make the JIT call a's lookup directly; drop
        // that one fact so the lookup goes where the (wrongly bound) code says, to b.
        var slots = Enumerable.Range(0, facts.Count).Select(i => i == 5 ? facts[i] with { Map = null } : facts[i]).ToList();
        var misbound = new ProgramFacts(program, slots, facts.MayReadUninitStack, facts.StackDepths);
        var wrong = s_checked.Prepare(ProgramBinder.Bind(program, [b]).Code, helpers, misbound);
        var e = Assert.Throws<BpfCheckedModeException>(() => MapPrograms.Run(wrong, (ulong)ctx.Block))!;
        Assert.That(e.Message, Does.Contain("instruction 7").And.Contain("the verifier proved a value of Hash map 'a'"));
        var plain = s_checked.Prepare(ProgramBinder.Bind(program, [b]).Code, helpers);
        Assert.That(MapPrograms.Run(plain, (ulong)ctx.Block), Is.EqualTo(1UL), "without facts any live map value passes");
    }

    static byte[] TcpContext()
    {
        var ctx = new byte[SkLookupLayout.Size];
        ctx[SkLookupLayout.Family] = 2;
        ctx[SkLookupLayout.Protocol] = 6;
        return ctx;
    }

    static IEnumerable<TestCaseData> Conformance()
    {
        string? shared = Paths.Shared;
        string dir = shared == null ? "" : Path.Combine(shared, "conformance");
        if (!Directory.Exists(dir)) { yield return new TestCaseData("").SetName("checked conformance (../shared absent)"); yield break; }
        yield return new TestCaseData(dir).SetName("checked conformance");
    }

    /// <summary>Every conformance program passes on the checked JIT (the programs are trusted vectors, not verified).</summary>
    [TestCaseSource(nameof(Conformance))]
    public void ConformanceSuitePassesInCheckedMode(string dir)
    {
        if (dir.Length == 0) Assert.Ignore("../shared is not present beside the repository: conformance skipped");
        var failures = new List<string>();
        var files = ConformanceRunner.ExpandPaths([dir]);
        foreach (var file in files)
        {
            var r = ConformanceRunner.RunFile(file, s_checked);
            if (r.Status != ConformanceStatus.Pass) failures.Add($"{Path.GetFileName(file)}: {r.Detail}");
        }
        TestContext.Out.WriteLine($"{files.Count - failures.Count} of {files.Count} conformance files pass in checked mode");
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    /// <summary>Every scenario (kernel selftests, tubular, the corpus, the examples) passes on the checked JIT.</summary>
    [Test]
    public void EveryScenarioPassesInCheckedMode()
    {
        var files = Directory.GetFiles(Path.Combine(Paths.RepoRoot, "tests", "scenarios"), "*.json")
            .Concat(Directory.GetFiles(Path.Combine(Paths.RepoRoot, "examples"), "*.json")).Order(StringComparer.Ordinal).ToList();
        var failures = new List<string>();
        foreach (var file in files)
        {
            var output = new StringWriter();
            try
            {
                var outcome = ScenarioRunner.RunFile(file, s_checked, output);
                if (outcome.Failed != 0 || outcome.Passed == 0) failures.Add($"{Path.GetFileName(file)}: {output}");
            }
            catch (BpfCheckedModeException e)
            {
                failures.Add($"{Path.GetFileName(file)}: {e.Message}");
            }
        }
        TestContext.Out.WriteLine($"{files.Count - failures.Count} of {files.Count} scenarios pass in checked mode");
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
        Assert.That(files, Has.Count.GreaterThan(30));
    }
}
