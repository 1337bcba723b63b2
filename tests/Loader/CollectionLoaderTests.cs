using BpfJit.Baselines;
using BpfJit.Cli.Commands;
using BpfJit.Cli.Hosting;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Scenarios;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Loader;

/// <summary>
/// <see cref="BpfCollection"/>, the one path from an object to attachable programs: every verb and host loads through
/// it and so verifies alike; a failing step leaves nothing alive; a failure says where.
/// </summary>
[TestFixture]
public class CollectionLoaderTests
{
    static string SpinLockObject => Path.Combine(Paths.RepoRoot, "tests", "scenarios", "progs", "spin_lock_loop.o");
    static string SpinLockScenario => Path.Combine(Paths.RepoRoot, "tests", "scenarios", "corpus_spin_lock_loop.json");
    static string MultiProg => Path.Combine(Paths.RepoRoot, "tests", "programs", "multi_prog.o");

    /// <summary>Records the live maps each verification is given, then verifies with the real verifier.</summary>
    sealed class RecordingVerifier : IProgramVerifier
    {
        public List<BpfMap> Maps { get; } = [];

        public void Verify(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers) => VerifyWithFacts(program, maps, helpers);

        public ProgramFacts? VerifyWithFacts(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers)
        {
            Maps.AddRange(maps.Where(m => !Maps.Contains(m)));
            return new SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
        }
    }

    // The counters map's BTF value type holds the lock at offset 0: a path that lost it would verify the program
    // against a map without BTF ("map 'counters' has to have BTF in order to use bpf_spin_lock") and reject it.
    static void AssertLockSeen(BpfMap counters, ProgramFacts? facts, string path)
    {
        Assert.That(counters.SpinLockOffset, Is.EqualTo(0), $"{path}: the live map keeps the BTF spin-lock offset");
        Assert.That(facts, Is.Not.Null, $"{path}: the program was verified");
    }

    [Test]
    public void ABpfSpinLockProgramIsVerifiedTheSameOnEveryPath()
    {
        Assert.That(ObjectFile.Load(SpinLockObject).Maps["counters"].SpinLockOffset, Is.EqualTo(0));

        using (var library = BpfCollection.Load(SpinLockObject, new CollectionOptions { Engine = InterpreterEngine.Instance }))
            AssertLockSeen(library.Map("counters"), library.Programs["spin_lock_loop"].Facts, "BpfCollection");

        using (var host = ProgramHost.Load(SpinLockObject, "spin_lock_loop", null, InterpreterEngine.Instance))
            AssertLockSeen(host.Program.Maps.Single(m => m.Name == "counters"), host.Program.Facts, "run/bench (ProgramHost)");

        using (var dump = VerifiedObjectProgram.Load(SpinLockObject, "spin_lock_loop"))
            AssertLockSeen(dump.Maps.Single(m => m.Name == "counters"), dump.Facts, "dump (VerifiedObjectProgram)");

        using (var scenario = ScenarioBuilder.Build(SpinLockScenario, InterpreterEngine.Instance))
            AssertLockSeen(scenario.Maps["counters"], scenario.Programs["spin_lock_loop"].Facts, "scenario (ScenarioBuilder)");

        using (var suite = SuiteObject.Load(SpinLockObject))
        {
            using var program = suite.LoadProgram("spin_lock_loop", InterpreterEngine.Instance);
            AssertLockSeen(suite.Map("counters"), program.Facts, "perf (SuiteObject)");
        }
    }

    // multi_prog.o's three programs, then one that reads r0 before writing it: rejected at its exit (insn 0).
    static CollectionSpec WithRejectedLastProgram()
    {
        var spec = ObjectFile.Load(MultiProg);
        var bad = new ProgramSpec("bad", "sk_lookup/bad", ProgramType.SkLookup, AttachType.SkLookup, Assembler.Assemble("exit")) { License = "GPL" };
        return new CollectionSpec { FileName = spec.FileName, Programs = new ProgramSpecList([.. spec.Programs, bad]), Maps = spec.Maps, License = spec.License, Btf = spec.Btf };
    }

    [Test]
    public void AFailureInTheLastProgramDisposesWhatTheEarlierOnesMade()
    {
        var verifier = new RecordingVerifier();
        var e = Assert.Throws<CollectionLoadException>(() =>
            BpfCollection.Load(WithRejectedLastProgram(), new CollectionOptions { Engine = JitEngine.Instance, Verifier = verifier }));
        Assert.That(e!.ProgramName, Is.EqualTo("bad"));
        // The earlier programs were loaded (each took references on the maps it uses) before the last one failed.
        Assert.That(verifier.Maps.Select(m => m.Name), Is.EquivalentTo(new[] { "redir_map", "run_map" }));
        // A program's last reference puts its maps after a grace period (bpf_prog_put's RCU callback).
        MapEpoch.Collect();
        foreach (var map in verifier.Maps)
        {
            Assert.That(map.IsDisposed, Is.True, $"{map.Name}: the owner's reference is dropped");
            Assert.That(map.IsLive, Is.False, $"{map.Name}: no program the collection loaded still holds it");
        }
    }

    [Test]
    public void AMapReplacementIsUsedAndLeftToItsOwner()
    {
        var spec = ObjectFile.Load(MultiProg);
        using var mine = MapFactory.Create(ObjectMaps.Definition(spec.Maps["run_map"]));
        using (var collection = BpfCollection.Load(spec, new CollectionOptions
        {
            Engine = InterpreterEngine.Instance,
            MapReplacements = new Dictionary<string, BpfMap> { ["run_map"] = mine },
        }))
        {
            Assert.That(collection.Map("run_map"), Is.SameAs(mine));
        }
        Assert.That(mine.IsDisposed, Is.False);
        Assert.That(mine.IsLive, Is.True);
    }

    [Test]
    public void ARejectionSaysFileSectionProgramAndInstruction()
    {
        var e = Assert.Throws<CollectionLoadException>(() =>
            BpfCollection.Load(WithRejectedLastProgram(), new CollectionOptions { Verifier = new SkLookupProgramVerifier() }));
        Assert.That(e!.Step, Is.EqualTo(CollectionLoadStep.Verify));
        Assert.That((e.FileName, e.Section, e.ProgramName, e.MapName, e.InstructionIndex),
            Is.EqualTo((MultiProg, "sk_lookup/bad", "bad", (string?)null, (int?)0)));
        Assert.That(e.Reason, Is.EqualTo("R0 !read_ok"));
        Assert.That(e.Message, Is.EqualTo($"{MultiProg}: section sk_lookup/bad: program bad: insn 0: R0 !read_ok"));
        Assert.That(e.InnerException, Is.InstanceOf<BpfVerifierException>());
        Assert.That(e.VerifierLog, Does.Contain("R0 !read_ok"));
    }

    [Test]
    public void AMapThatCannotBeCreatedIsNamed()
    {
        var e = Assert.Throws<CollectionLoadException>(() => BpfCollection.Load(MultiProg, new CollectionOptions
        {
            MapDefinition = (m, def) => m.Name == "run_map" ? def with { ValueSize = 0 } : def,
        }));
        Assert.That((e!.Step, e.MapName, e.ProgramName, e.InstructionIndex), Is.EqualTo((CollectionLoadStep.Maps, "run_map", (string?)null, (int?)null)));
        Assert.That(e.InnerException, Is.InstanceOf<MapCreateException>());
        Assert.That(e.Message, Is.EqualTo($"{MultiProg}: map run_map: value_size 0 (-EINVAL)"));
    }

    [Test]
    public void ABadMapReferenceSaysItsInstruction()
    {
        var spec = ObjectFile.Load(MultiProg);
        // ld_imm64 of map index 7 in an object of two maps; unverified, so the binder is the step that refuses it.
        var code = Assembler.Assemble("mov %r0, 0\nexit");
        var refersToNothing = new Instruction[] { code[0], new(0x18, 1, (byte)Ld64Source.MapIdx, 0, 7), new(0, 0, 0, 0, 0), code[1] };
        var bad = new ProgramSpec("bad", "sk_lookup/bad", ProgramType.SkLookup, AttachType.SkLookup, refersToNothing) { License = "GPL" };
        var withBad = new CollectionSpec { FileName = spec.FileName, Programs = new ProgramSpecList([bad]), Maps = spec.Maps };
        var e = Assert.Throws<CollectionLoadException>(() => BpfCollection.Load(withBad, new CollectionOptions { Verify = false }));
        Assert.That((e!.Step, e.ProgramName, e.InstructionIndex), Is.EqualTo((CollectionLoadStep.Bind, "bad", (int?)1)));
        Assert.That(e.InnerException, Is.InstanceOf<ProgramBindException>());
    }

    [Test]
    public void AnUnknownProgramIsRefusedAndTheCollectionStaysUsable()
    {
        using var collection = BpfCollection.Load(MultiProg, new CollectionOptions { Engine = InterpreterEngine.Instance, Programs = [] });
        Assert.That(collection.Programs, Is.Empty);
        var e = Assert.Throws<CollectionLoadException>(() => collection.LoadProgram("nope"));
        Assert.That(e!.Step, Is.EqualTo(CollectionLoadStep.Lookup));
        Assert.That(e.Message, Is.EqualTo($"{MultiProg}: no program named 'nope' (programs: multi_pass, multi_drop, multi_redir)"));
        Assert.That(collection.Program("multi_redir").Name, Is.EqualTo("multi_redir"));
        Assert.That(collection.Programs.Keys, Is.EquivalentTo(new[] { "multi_redir" }));
    }

    [Test]
    public void AScenarioInlineProgramLoadsThroughTheCollectionAndARejectionPointsAtItsCode()
    {
        string dir = Directory.CreateTempSubdirectory("bpfjit-col-").FullName;
        try
        {
            string good = Path.Combine(dir, "good.json");
            File.WriteAllText(good, """
                {"map_definitions": {"m": {"type": "array", "key_size": 4, "value_size": 8, "max_entries": 1}},
                 "programs": {"p": {"asm": ["lddw %r1, map:m", "mov %r0, 1", "exit"]}}, "attach": ["p"]}
                """);
            using (var env = ScenarioBuilder.Build(good, InterpreterEngine.Instance))
            {
                Assert.That(env.Programs["p"].Facts, Is.Not.Null, "verified");
                Assert.That(env.Programs["p"].Maps.Single(), Is.SameAs(env.Maps["m"]), "bound to the scenario's live map");
            }
            string bad = Path.Combine(dir, "bad.json");
            File.WriteAllText(bad, """{"programs": {"p": {"asm": "exit"}}, "attach": ["p"]}""");
            var e = Assert.Throws<ScenarioException>(() => ScenarioBuilder.Build(bad, InterpreterEngine.Instance));
            Assert.That(e!.Message, Is.EqualTo($"{bad}: $.programs.p.asm: program 'p': verifier rejected the program at insn 0: R0 !read_ok"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void TheRegistryNamesTheEngines()
    {
        Assert.That(BpfEngines.Names, Is.EqualTo(new[] { "interpreter", "jit" }));
        Assert.That(BpfEngines.Get("jit"), Is.SameAs(JitEngine.Instance));
        Assert.That(BpfEngines.Checking("interpreter"), Is.SameAs(InterpreterEngine.Instance));
        Assert.That(((JitEngine)BpfEngines.Checking("jit")).Options.Checked, Is.True);
        Assert.Throws<KeyNotFoundException>(() => BpfEngines.Get("llvm"));
    }
}
