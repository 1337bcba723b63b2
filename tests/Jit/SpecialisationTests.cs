using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.SkLookup;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Verifier-driven specialisation (docs/jit.md): each fact changes the emitted IL (the specialised
/// listing differs from the plain one and carries the fact's note), and the specialised program
/// computes what the interpreter and the unspecialised JIT compute, on several contexts.
/// </summary>
[TestFixture]
public class SpecialisationTests
{
    static readonly HelperTable s_helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();

    /// <summary>One program three ways: the interpreter, the JIT without facts, the JIT with the verifier's facts.</summary>
    sealed record Prepared(ProgramFacts Facts, BpfEntry Interpreter, CompiledProgram Plain, CompiledProgram Specialised)
    {
        public string PlainIl => Plain.GetIlListing();
        public string SpecialisedIl => Specialised.GetIlListing();
    }

    /// <summary>Verifies <paramref name="asm"/> against <paramref name="maps"/>, binds it, rewrites its ctx loads, and prepares it three ways.</summary>
    static Prepared Prepare(string asm, params BpfMap[] maps)
    {
        var program = MapPrograms.Assemble(asm);
        var infos = maps.Select(m => new MapInfo(m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags)).ToList();
        var result = BpfJit.Verifier.Verifier.Verify(program, new VerifierOptions { Helpers = s_helpers, Maps = infos, LogLevel = 1 });
        Assert.That(result.Accepted, Is.True, result.Log);
        var facts = result.ToProgramFacts(program, maps);
        var code = CtxLoadRewriter.Rewrite(ProgramBinder.Bind(program, maps).Code);
        return new Prepared(facts, InterpreterEngine.Instance.Prepare(code, s_helpers),
            JitCompiler.Compile(code, s_helpers), JitCompiler.Compile(code, s_helpers, null, facts));
    }

    static readonly Packet[] s_packets =
    [
        SkTestSupport.Pkt("tcp", "10.0.0.1:1234", "127.0.0.1:8080"),
        SkTestSupport.Pkt("udp", "192.168.1.2:53", "10.1.2.3:65534", ifindex: 7),
        SkTestSupport.Pkt("tcp", "[2001:db8::1]:40000", "[2001:db8::2]:443"),
        SkTestSupport.Pkt("udp", "[::1]:1", "[fe80::1]:65534"),
    ];

    /// <summary>Runs the three on every packet and asserts the same r0; <paramref name="observe"/> adds what else must agree (map contents).</summary>
    static void AssertSameResults(Prepared p, Func<string>? observe = null, Action? reset = null)
    {
        using var ctx = new SkLookupContext();
        foreach (var packet in s_packets)
        {
            var seen = new List<string>();
            foreach (var entry in new[] { p.Interpreter, p.Plain.Entry, p.Specialised.Entry })
            {
                reset?.Invoke();
                ctx.Fill(packet);
                ulong r0 = MapPrograms.Run(entry, (ulong)ctx.Address);
                seen.Add($"r0={r0:x} {observe?.Invoke()}");
            }
            Assert.That(seen[1], Is.EqualTo(seen[0]), $"{packet}: JIT without facts vs interpreter");
            Assert.That(seen[2], Is.EqualTo(seen[0]), $"{packet}: specialised JIT vs interpreter");
        }
    }

    [Test]
    public void StackIsNotZeroedWhenNeverReadBeforeWritten()
    {
        // r10 copied (r9): the stack is a block in memory (a private one is held in locals, StackSlotTests).
        var p = Prepare("""
            mov %r9, %r10
            ldxw %r2, [%r1+60]
            stxdw [%r10-16], %r2
            ldxdw %r3, [%r10-16]
            mov %r0, 0
            jne %r3, 8080, out
            mov %r0, 1
            out:
            exit
            """);
        Assert.That(p.Facts.MayReadUninitStack, Is.False);
        Assert.That(p.Plain.ZeroesStack, Is.True);
        Assert.That(p.Specialised.ZeroesStack, Is.False);
        Assert.That(p.Specialised.StackFrameSize, Is.EqualTo(16), "sized from the verifier's stack depth");
        Assert.That(p.PlainIl, Does.Contain("initblk"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("initblk"));
        Assert.That(p.SpecialisedIl, Does.Contain("stack 16 bytes, not zeroed"));
        AssertSameResults(p);
    }

    [Test]
    public void StackStaysZeroedWhenSomePathMayReadItUninitialised()
    {
        var p = Prepare("""
            mov %r9, %r10
            ldxw %r2, [%r1+60]
            jne %r2, 8080, skip
            stdw [%r10-8], 5
            skip:
            ldxdw %r3, [%r10-8]
            mov %r0, 0
            jne %r3, 0, out
            mov %r0, 1
            out:
            exit
            """);
        Assert.That(p.Facts.MayReadUninitStack, Is.True);
        Assert.That(p.Specialised.ZeroesStack, Is.True);
        Assert.That(p.SpecialisedIl, Does.Contain("initblk"));
        AssertSameResults(p);
    }

    [Test]
    public void DeadCodeIsNotEmittedAndAnUnusedStackGetsNoBlock()
    {
        // r2 is 0, so the jump is always taken: the stack code is dead, and r10 is used only there (copied to r9
        // there, so that without facts the stack is a block in memory, not locals).
        var p = Prepare("""
            mov %r0, 1
            mov %r2, 0
            jeq %r2, 0, out
            stdw [%r10-8], 7
            ldxdw %r0, [%r10-8]
            mov %r9, %r10
            out:
            exit
            """);
        Assert.That(p.Facts[3].Reachable, Is.False);
        Assert.That(p.Plain.StackFrames, Is.EqualTo(1));
        Assert.That(p.Specialised.StackFrames, Is.Zero, "r10 is read only by dead code");
        Assert.That(p.PlainIl, Does.Contain("ldloca.s block"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("ldloca.s block"));
        Assert.That(p.SpecialisedIl, Does.Contain("fact: unreachable, not emitted"));
        Assert.That(p.SpecialisedIl, Does.Contain("fact: always taken"));
        AssertSameResults(p);
    }

    [Test]
    public void DivisionCheckIsRemovedWhereTheDivisorIsNonZero()
    {
        var p = Prepare("""
            ldxw %r2, [%r1+60]
            or %r2, 1
            mov %r3, 100000
            div %r3, %r2
            mov %r4, 77777
            mod %r4, %r2
            mov32 %r5, 99999
            div32 %r5, %r2
            add %r3, %r4
            add %r3, %r5
            and %r3, 1
            mov %r0, %r3
            exit
            """);
        Assert.That(p.Facts[3].DivisorNonZero, Is.True);
        Assert.That(p.PlainIl, Does.Contain("Semantics::Div64"));
        Assert.That(p.PlainIl, Does.Contain("Semantics::Mod64"));
        Assert.That(p.PlainIl, Does.Contain("Semantics::Div32"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("Semantics::"));
        Assert.That(p.SpecialisedIl, Does.Contain("div.un"));
        Assert.That(p.SpecialisedIl, Does.Contain("rem.un"));
        Assert.That(p.SpecialisedIl, Does.Contain("; fact: divisor non-zero, x / 0 case removed, guarded"));
        AssertSameResults(p);
    }

    [Test]
    public void HelperArgumentsTheProtoDoesNotTakeAreNotMaterialised()
    {
        // bpf_get_prandom_u32 takes no argument: without facts r1-r5 are passed (r3-r5 set to 0 in the
        // prologue), with facts none is, and no register is set in the prologue.
        var p = Prepare("""
            call 7
            mov %r0, 1
            exit
            """);
        Assert.That(p.PlainIl, Does.Contain("stloc.3 // r3"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("stloc.3 // r3"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("stloc.1 // r1"));
        Assert.That(p.SpecialisedIl, Does.Contain("takes 0 argument(s)"));
        AssertSameResults(p);
    }

    /// <summary>Every narrow-load rule of spec 1.2 the JIT folds at compile time, written into an ARRAY value and compared byte for byte.</summary>
    [Test]
    public void ContextLoadsAreDirectReadsWithNarrowLoadsFolded()
    {
        using var output = MapFactory.Create(MapType.Array, 4, 96, 1, 0, "out");
        string[] loads =
        [
            "ldxh %r2, [%r6+62]",   // local_port quirk: 2 bytes at +2 read the field
            "ldxb %r2, [%r6+10]",   // family byte 2: always 0
            "ldxw %r2, [%r6+36]",   // remote_port read with 4 bytes: 16 bits
            "ldxb %r2, [%r6+38]",   // padding: 0
            "ldxsh %r2, [%r6+62]",  // sign-extending quirk load
            "ldxb %r2, [%r6+61]",   // local_port high byte
            "ldxw %r2, [%r6+8]",    // family
            "ldxw %r2, [%r6+44]",   // local_ip6[0] (0 for IPv4)
            "ldxh %r2, [%r6+14]",   // protocol quirk
            "ldxsb %r2, [%r6+37]",  // remote_port high byte, sign-extended
            "ldxw %r2, [%r6+64]",   // ingress_ifindex
        ];
        var body = string.Join('\n', loads.Select((l, k) => $"{l}\nstxdw [%r0+{8 * k}], %r2"));
        var p = Prepare($"""
            mov %r6, %r1
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, out
            {body}
            out:
            mov %r0, 0
            exit
            """, output);
        Assert.That(p.SpecialisedIl, Does.Contain("; ctx load local_port"));
        Assert.That(p.SpecialisedIl, Does.Contain("; ctx load family +10 size 1: always 0, folded"));
        Assert.That(p.SpecialisedIl, Does.Contain("4-byte load at 36 reads 2 bytes at 36"));
        Assert.That(p.PlainIl, Does.Not.Contain("ctx load"));
        var key = new byte[4];
        var value = new byte[96];
        AssertSameResults(p,
            observe: () => { Assert.That(output.Lookup(key, value), Is.Zero); return Convert.ToHexString(value); },
            reset: () => Assert.That(output.Update(key, new byte[96]), Is.Zero));
    }

    [Test]
    public void ArrayLookupsAreInlined([Values(MapType.Array, MapType.PerCpuArray)] MapType type)
    {
        using var array = MapFactory.Create(type, 4, 12, 8, 0, "arr");
        var p = Prepare("""
            ldxw %r2, [%r1+60]
            and %r2, 15
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            mov %r6, 0
            jeq %r0, 0, miss
            ldxw %r3, [%r0+4]
            add %r3, 1
            stxw [%r0+4], %r3
            mov %r6, 1
            miss:
            mov %r0, %r6
            exit
            """, array);
        string note = type == MapType.Array ? "; ARRAY lookup inlined" : "; PERCPU_ARRAY lookup inlined";
        Assert.That(p.SpecialisedIl, Does.Contain(note));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("MapLookupElem"));
        Assert.That(p.PlainIl, Does.Contain("KernelHelpers::MapLookupElem"));
        // local_port & 15: 8080 -> 0 (hit), 65534 -> 14 (miss), 443 -> 11 (miss), 0 -> 0 (hit)
        var key = new byte[4];
        var value = new byte[array.UserValueSize];
        AssertSameResults(p,
            observe: () => { Assert.That(array.Lookup(key, value), Is.Zero); return Convert.ToHexString(value); },
            reset: () => Assert.That(array.Update(key, new byte[array.UserValueSize]), Is.Zero));
    }

    [Test]
    public void HashAndLpmTrieLookupsCallTheMapDirectly()
    {
        using var hash = MapFactory.Create(MapType.Hash, 4, 8, 16, 0, "ports");
        using var trie = MapFactory.Create(MapType.LpmTrie, 8, 8, 16, MapFlags.NoPrealloc, "prefixes");
        Assert.That(hash.Update(MapPrograms.U32(8080), MapPrograms.U64(1)), Is.Zero);
        // 10.0.0.0/8 -> 1
        Assert.That(trie.Update([8, 0, 0, 0, 10, 0, 0, 0], MapPrograms.U64(1)), Is.Zero);
        var p = Prepare("""
            mov %r6, %r1
            ldxw %r2, [%r6+60]
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            mov %r7, 0
            jeq %r0, 0, trie
            ldxdw %r7, [%r0+0]
            trie:
            stw [%r10-16], 32
            ldxw %r2, [%r6+16]
            stxw [%r10-12], %r2
            mov %r2, %r10
            add %r2, -16
            ldmap %r1, 1
            call 1
            jeq %r0, 0, out
            ldxdw %r3, [%r0+0]
            and %r7, %r3
            out:
            mov %r0, %r7
            and %r0, 1
            exit
            """, hash, trie);
        Assert.That(p.SpecialisedIl, Does.Contain("; HASH lookup: direct call on map ports (closure.Map0)"));
        Assert.That(p.SpecialisedIl, Does.Contain("; LPM_TRIE lookup: direct call on map prefixes (closure.Map1)"));
        Assert.That(p.SpecialisedIl, Does.Contain("JitMapCalls::HashLookup(HashMap, UInt64)"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("MapLookupElem"));
        AssertSameResults(p);
        using var ctx = new SkLookupContext();
        ctx.Fill(s_packets[0]);
        Assert.That(MapPrograms.Run(p.Specialised.Entry, (ulong)ctx.Address), Is.EqualTo(1UL), "10.0.0.1 -> 127.0.0.1:8080 hits both maps");
    }

    [Test]
    public void SocketMapLookupsCallTheMapDirectly([Values(MapType.SockMap, MapType.SockHash)] MapType type)
    {
        var ns = new NetNamespace();
        var listener = SkTestSupport.Tcp(ns, "127.0.0.1:8080");
        using var socks = MapFactory.Create(type, 4, 8, 4, 0, "socks");
        Assert.That(socks.Update(MapPrograms.U32(8080 & 3), BitConverter.GetBytes(listener.Cookie)), Is.Zero);
        var p = Prepare("""
            ldxw %r2, [%r1+60]
            and %r2, 3
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            mov %r6, 0
            jeq %r0, 0, out
            mov %r1, %r0
            call 86
            mov %r6, 1
            out:
            mov %r0, %r6
            exit
            """, socks);
        string kind = type == MapType.SockMap ? "SOCKMAP" : "SOCKHASH";
        Assert.That(p.SpecialisedIl, Does.Contain($"; {kind} lookup: direct call on map socks"));
        Assert.That(p.SpecialisedIl, Does.Not.Contain("MapLookupElem"));
        AssertSameResults(p);
    }

    [Test]
    public void FactsOfAnotherProgramAreRefused()
    {
        var p = Prepare("mov %r0, 1\nexit");
        var other = Assembler.Assemble("mov %r0, 1\nmov %r0, 0\nexit");
        var e = Assert.Throws<ArgumentException>(() => JitCompiler.Compile(other, s_helpers, null, p.Facts))!;
        Assert.That(e.Message, Does.Contain("another program"));
    }

    [Test]
    public void WithoutFactsNothingIsSpecialised()
    {
        var p = Prepare("""
            ldxw %r2, [%r1+60]
            or %r2, 1
            mov %r0, 10
            div %r0, %r2
            and %r0, 1
            exit
            """);
        Assert.That(p.Plain.Facts, Is.Null);
        Assert.That(p.PlainIl, Does.Not.Contain("; fact:"));
        Assert.That(p.PlainIl, Does.Not.Contain("specialised with verifier facts"));
        Assert.That(p.Specialised.Facts, Is.SameAs(p.Facts));
    }

    /// <summary>The runtime's loading path hands the facts on: a scenario's object programs run specialised on the JIT.</summary>
    [Test]
    public void ObjectProgramsLoadedByTheRuntimeAreSpecialised()
    {
        var saved = ProgramVerification.Verifier;
        ProgramVerification.Verifier = new SkLookupProgramVerifier();
        try
        {
            string obj = Path.Combine(Paths.RepoRoot, "tests", "programs", "redir_port.o");
            var spec = BpfJit.Frontend.Elf.ObjectFile.Load(obj);
            var maps = spec.Maps.Select(m => MapFactory.Create((MapType)(int)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags, m.Name)).ToList();
            try
            {
                var program = spec.Programs.First(x => x.IsSupported);
                var facts = ProgramVerification.Verify(program, maps, s_helpers);
                Assert.That(facts, Is.Not.Null);
                var loaded = SkLookupProgram.Load(program.Name, ProgramBinder.Bind(program.Instructions, maps).Code, JitEngine.Instance, null, facts);
                Assert.That(loaded.Facts, Is.SameAs(facts));
            }
            finally
            {
                foreach (var m in maps) m.Dispose();
            }
        }
        finally
        {
            ProgramVerification.Verifier = saved;
        }
    }
}
