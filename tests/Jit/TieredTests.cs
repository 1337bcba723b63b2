using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Conformance;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>
/// <see cref="JitOptions.Tiered"/>: the program runs on the interpreter until the background compile
/// ends, then on RyuJIT's code, with the same results before and after. The background compile is held
/// back with <c>TierUpDelay</c> so the interpreter stage is observed for certain, not by timing.
/// </summary>
[TestFixture]
public class TieredTests
{
    static IEnumerable<TestCaseData> SharedPrograms()
    {
        foreach (var sub in new[] { "conformance", "bench" })
        {
            string? shared = Paths.Shared;
            string dir = shared == null ? "" : Path.Combine(shared, sub);
            if (!Directory.Exists(dir))
            {
                yield return new TestCaseData("").SetName($"tiered {sub} (../shared absent)");
                continue;
            }
            foreach (var file in Directory.GetFiles(dir, "*.data").Order(StringComparer.Ordinal))
                yield return new TestCaseData(file).SetName($"tiered {sub} {Path.GetFileNameWithoutExtension(file)}");
        }
    }

    /// <summary>Compiles tiered, with the background compile held until <see cref="Release"/>.</summary>
    sealed class HeldEngine : IBpfEngine
    {
        readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public List<CompiledProgram> Compiled { get; } = [];
        public string Name => "jit-tiered";

        public BpfEntry Prepare(Instruction[] program, HelperTable helpers)
        {
            var compiled = JitCompiler.Compile(program, helpers, new JitOptions { Tiered = true, TierUpDelay = _gate.Task });
            Compiled.Add(compiled);
            return compiled.Entry;
        }

        public void Release() => _gate.TrySetResult();
    }

    /// <summary>Hands out the entry of a program already compiled (after its switch to the JIT).</summary>
    sealed class AfterEngine(CompiledProgram compiled) : IBpfEngine
    {
        public string Name => "jit-tiered-after";
        public BpfEntry Prepare(Instruction[] program, HelperTable helpers) => compiled.Entry;
    }

    [TestCaseSource(nameof(SharedPrograms))]
    public void SameResultsBeforeAndAfterTheSwitch(string file)
    {
        if (file.Length == 0) Assert.Ignore("../shared is not present beside the repository");
        var test = ConformanceFile.Load(file);
        var engine = new HeldEngine();
        var before = ConformanceRunner.Run(test, engine);
        Assert.That(before.Status, Is.Not.EqualTo(ConformanceStatus.Fail).And.Not.EqualTo(ConformanceStatus.Error), "interpreter stage: " + before.Detail);
        if (engine.Compiled.Count == 0) return;   // skipped, or rejected before compiling (same on every engine)
        var compiled = engine.Compiled.Single();
        Assert.That(compiled.IsJitted, Is.False, "before the gate opens only the interpreter can have run");
        engine.Release();
        Assert.That(compiled.JitCompleted.Wait(TimeSpan.FromSeconds(60)), Is.True, "background compile did not end");
        Assert.That(compiled.IsJitted, Is.True);
        Assert.That(compiled.Entry.Target, Is.InstanceOf<JitClosure>(), "after the switch Entry is the compiled method's own delegate");
        var after = ConformanceRunner.Run(test, new AfterEngine(compiled));
        Assert.That(after.Status, Is.EqualTo(before.Status), "JIT stage: " + after.Detail);
        Assert.That(after.Detail, Is.EqualTo(before.Detail));
    }

    [Test]
    public void EntryTakenBeforeTheSwitchSpeedsUpByItself()
    {
        var gate = new TaskCompletionSource();
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r0, %r1\nmul %r0, 3\nexit"), HelperTable.Bench(),
            new JitOptions { Tiered = true, TierUpDelay = gate.Task });
        var early = compiled.Entry;
        Assert.That(early(14, 0), Is.EqualTo(42));
        Assert.That(compiled.IsJitted, Is.False);
        Assert.That(compiled.JitCompleted.IsCompleted, Is.False);
        gate.SetResult();
        compiled.JitCompleted.Wait(TimeSpan.FromSeconds(60));
        Assert.That(compiled.IsJitted, Is.True);
        Assert.That(early(14, 0), Is.EqualTo(42));
        Assert.That(early.Target, Is.SameAs(compiled), "the early entry forwards through the program");
        Assert.That(compiled.Entry, Is.Not.SameAs(early));
        Assert.That(compiled.Run(2, 0), Is.EqualTo(6));
    }

    [Test]
    public void WithoutTheOptionTheProgramIsJittedAtOnce()
    {
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r0, 7\nexit"), HelperTable.Bench());
        Assert.That(compiled.IsJitted, Is.True);
        Assert.That(compiled.JitCompleted.IsCompletedSuccessfully, Is.True);
        Assert.That(compiled.Entry.Target, Is.InstanceOf<JitClosure>());
    }

    [Test]
    public void CheckedModeCompilesAtOnce()
    {
        var never = new TaskCompletionSource().Task;
        var checkedProgram = JitCompiler.Compile(Assembler.Assemble("mov %r0, 7\nexit"), HelperTable.Bench(),
            new JitOptions { Tiered = true, Checked = true, TierUpDelay = never });
        Assert.That(checkedProgram.IsJitted, Is.True, "checked mode is the JIT's own oracle: it never runs on the interpreter");
        Assert.That(checkedProgram.Run(), Is.EqualTo(7));
    }

    [Test]
    public void ProgramErrorsStillSurfaceInCompile()
    {
        var e = Assert.Throws<BpfRuntimeException>(() =>
            JitCompiler.Compile(Assembler.Assemble("call 9999\nexit"), HelperTable.Bench(), new JitOptions { Tiered = true }));
        Assert.That(e!.Message, Does.Contain("9999"));
    }

    [Test]
    public void SkLookupProgramRunsOnATieredEngine()
    {
        using var stats = BpfStats.Enable();   // run_cnt counts only while statistics are on
        var gate = new TaskCompletionSource();
        var engine = new JitEngine(new JitOptions { Tiered = true, TierUpDelay = gate.Task });
        // return ctx->local_port == 80 ? SK_PASS : SK_DROP
        var program = SkLookupProgram.Load("port80", Assembler.Assemble(
            "ldxw %r2, [%r1+60]\nmov %r0, 0\njne %r2, 80, +1\nmov %r0, 1\nexit"), engine);
        using var ctx = new SkLookupContext();
        ctx.Fill(new BpfJit.Runtime.Sockets.Packet(BpfJit.Runtime.Sockets.SocketProtocol.Tcp,
            BpfJit.Runtime.Sockets.InetEndPoint.From(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.0.0.1"), 5000)),
            BpfJit.Runtime.Sockets.InetEndPoint.From(new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.0.0.2"), 80)), 1));
        Assert.That(program.Run(ctx.Address), Is.EqualTo(1));
        Assert.That(program.RunCount, Is.EqualTo(1));
        gate.SetResult();
    }
}
