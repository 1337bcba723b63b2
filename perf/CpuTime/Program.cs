// ns per run of one ../shared/bench program or SK_LOOKUP suite case on one engine, by this thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID): time the thread spends descheduled on a loaded machine is not counted, so two builds
// compare on a shared VM where wall-clock figures move by +-50 %. The minimum of 7 batches of ~50 ms each.
// usage: [BPFJIT_WARM=CASE,...] BpfJit.CpuTime NAME [interpreter|jit]   (from the repository root; compare.sh runs two builds)
using System.Runtime.InteropServices;
using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Maps;
using BpfJit.Baselines;

unsafe
{
    string name = args[0];
    ProgramVerification.Verifier = new BpfJit.Verifier.SkLookupProgramVerifier();
    string engineName = args.Length > 1 ? args[1] : "interpreter";
    IBpfEngine engine = engineName == "jit" ? BpfJit.IlEmitter.JitEngine.Instance : InterpreterEngine.Instance;
    // BPFJIT_WARM=CASE,CASE...: run those cases first, half a second each, so that the runtime's tiering and dynamic
    // PGO see other programs before this one (the engines' code is then not shaped by the measured program alone).
    foreach (var warm in (Environment.GetEnvironmentVariable("BPFJIT_WARM") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
    {
        var warmBody = Body(warm, engine);
        double w0 = Cpu();
        for (long n = 1; Cpu() - w0 < 0.5; n *= 2) warmBody(n);
    }
    Action<long> body = Body(name, engine);

    long batch = 1;
    double t0 = Cpu();
    while (Cpu() - t0 < 0.3) { body(batch); batch *= 2; }
    batch = Math.Max(1, batch / 8);
    // batch now takes roughly 40-80 ms
    double best = double.MaxValue;
    for (int k = 0; k < 7; k++)
    {
        double a = Cpu(); body(batch); double b = Cpu();
        best = Math.Min(best, (b - a) / batch * 1e9);
    }
    Console.WriteLine($"{best:F1}");
}

// The timed loop of one case: a .data program on its registered memory, or a suite case through the hook.
static unsafe Action<long> Body(string name, IBpfEngine engine)
{
    Action<long> body;
    string data = $"../shared/bench/{name}.data";
    if (File.Exists(data))
    {
        var test = BpfJit.Frontend.Conformance.ConformanceFile.Load(data);
        var entry = engine.Prepare(test.Program!, HelperTable.Bench());
        int length = test.Memory.Length;
        byte* memory = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(length, 1));
        BpfJit.Runtime.Checked.MemoryRegions.Register((ulong)memory, Math.Max(length, 1), BpfJit.Runtime.Checked.MemoryRegionKind.Context);
        var mem = test.Memory;
        body = n => { for (long i = 0; i < n; i++) { mem.AsSpan().CopyTo(new Span<byte>(memory, length)); entry(length == 0 ? 0 : (ulong)memory, (ulong)length); } };
    }
    else
    {
        var suite = SuiteCases.Create(name);
        var ctx = new SkLookupContext();
        ctx.Fill(suite.TimedPacket);
        var programs = suite.LoadPrograms(engine);
        body = n => { MapEpoch.Enter(); try { for (long i = 0; i < n; i++) SkLookupHook.RunArray(programs, ctx); } finally { MapEpoch.Exit(); } };
    }
    return body;
}

static unsafe double Cpu()
{
    Timespec ts;
    clock_gettime(3, &ts); // CLOCK_THREAD_CPUTIME_ID
    return ts.Sec + ts.Nsec * 1e-9;
}

[DllImport("libc")] static extern unsafe int clock_gettime(int clock, Timespec* ts);
struct Timespec { public long Sec; public long Nsec; }
