using BenchmarkDotNet.Attributes;
using BpfJit.Baselines;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Perf;

/// <summary>Shared set-up of the SK_LOOKUP suite's benchmarks.</summary>
static class Suite
{
    /// <summary>Installs the verifier (object programs are never run unverified).</summary>
    public static void InstallVerifier() => ProgramVerification.Verifier ??= new BpfJit.Verifier.SkLookupProgramVerifier();

    /// <summary>The engine a parameter names.</summary>
    public static IBpfEngine Engine(string name) => name switch
    {
        "interpreter" => InterpreterEngine.Instance,
        "jit" => JitEngine.Instance,
        _ => throw new ArgumentException(name),
    };

    /// <summary>The case's programs on the engine a parameter names (hand-written: the baselines behind <see cref="HandWrittenEngine"/>).</summary>
    public static SkLookupProgram[] Load(SuiteCase suite, string engine) =>
        engine == "hand-written" ? suite.LoadHandWritten() : suite.LoadPrograms(Engine(engine));
}

/// <summary>
/// Per program, ns per run through the program's entry (<see cref="SkLookupProgram.Run"/>, what the
/// hook calls): interpreter, JIT and the hand-written C# baseline behind the same entry
/// (<see cref="HandWrittenEngine"/>); <c>HandWrittenDirect</c> calls the baseline with no entry in
/// between. Each operation resets the selection and runs the case's programs in order on the timed
/// packet's context (the chain: its four programs). Runs happen 64 to an invocation inside one
/// reclamation read section. Ratio = method ÷ HandWritten.
/// </summary>
[MemoryDiagnoser]
public unsafe class SkLookupProgramBenchmarks
{
    const int Runs = 64;
    SuiteCase _suite = null!;
    SkLookupProgram[] _interpreter = [], _jit = [], _hand = [];
    SkLookupBaseline[] _baselines = [];
    SkLookupContext _ctx = null!;
    nint _address;

    /// <summary>The suite case (<see cref="SuiteCases.Names"/>).</summary>
    [ParamsSource(nameof(Cases))]
    public string Case { get; set; } = "";

    /// <summary>The cases.</summary>
    public static IEnumerable<string> Cases => SuiteCases.Names;

    /// <summary>Builds the case, loads its programs on every engine, checks the timed packet's decision.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Suite.InstallVerifier();
        _suite = SuiteCases.Create(Case);
        _interpreter = Suite.Load(_suite, "interpreter");
        _jit = Suite.Load(_suite, "jit");
        _hand = Suite.Load(_suite, "hand-written");
        _baselines = [.. _suite.Baselines];
        _ctx = new SkLookupContext();
        _ctx.Fill(_suite.TimedPacket);
        _address = _ctx.Address;
        using (MapEpoch.Protect())
        {
            uint expected = RunAll(_jit);
            bool selects = _ctx.SelectedSocket != 0;
            if (selects != _suite.TimedSelects) throw new InvalidOperationException($"{Case}: selection {selects}, expected {_suite.TimedSelects}");
            foreach (var (name, r) in new[] { ("interpreter", RunAll(_interpreter)), ("hand-written", RunAll(_hand)), ("direct", RunDirect()) })
                if (r != expected || (_ctx.SelectedSocket != 0) != selects) throw new InvalidOperationException($"{Case}: {name} disagrees with the JIT");
        }
    }

    /// <summary>Releases the case.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _ctx.Dispose();
        _suite.Dispose();
    }

    uint RunAll(SkLookupProgram[] programs)
    {
        *(nint*)_address = 0;
        uint r = 0;
        foreach (var p in programs) r = p.Run(_address);
        return r;
    }

    uint RunDirect()
    {
        *(nint*)_address = 0;
        uint r = 0;
        foreach (var b in _baselines) r = b.Run(_address);
        return r;
    }

    uint Loop(SkLookupProgram[] programs)
    {
        uint sum = 0;
        MapEpoch.Enter();
        try
        {
            for (int i = 0; i < Runs; i++) sum += RunAll(programs);
        }
        finally
        {
            MapEpoch.Exit();
        }
        return sum;
    }

    /// <summary>The reference interpreter.</summary>
    [Benchmark(OperationsPerInvoke = Runs)]
    public uint Interpreter() => Loop(_interpreter);

    /// <summary>The JIT.</summary>
    [Benchmark(OperationsPerInvoke = Runs)]
    public uint Jit() => Loop(_jit);

    /// <summary>The hand-written baseline behind the same program entry.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Runs)]
    public uint HandWritten() => Loop(_hand);

    /// <summary>The hand-written baseline called directly.</summary>
    [Benchmark(OperationsPerInvoke = Runs)]
    public uint HandWrittenDirect()
    {
        uint sum = 0;
        MapEpoch.Enter();
        try
        {
            for (int i = 0; i < Runs; i++) sum += RunDirect();
        }
        finally
        {
            MapEpoch.Exit();
        }
        return sum;
    }
}

/// <summary>
/// Whole-hook lookups (<see cref="NetNamespace.Lookup(in Packet)"/>: connected sockets, the hook's
/// context fill and run array, the selection, listeners) with no program, the trivial program
/// (<c>return SK_PASS</c>: the listener answers), one (redir_port, the dispatcher with 10,000 bindings)
/// or four (the chain) attached, from one or two threads. Each invocation is 20,000 lookups split over
/// the threads, which are started once and released per invocation (blocked between invocations: a
/// woken thread is placed on an idle processor, which spinning threads were not, on a shared two-core
/// machine); the mean is wall time per lookup, so lookups per second = 10⁹ ÷ mean(ns).
/// </summary>
[MemoryDiagnoser]
public class SkLookupHookBenchmarks
{
    const int Lookups = 20_000;
    SuiteCase _suite = null!;
    SuiteCase? _programCase;
    Packet _packet;
    Sock _expected = null!;
    Thread[] _workers = [];
    SemaphoreSlim _start = null!;
    CountdownEvent _done = null!;
    volatile bool _stop;
    int _wrong;

    /// <summary>The engine the programs run on.</summary>
    [Params("interpreter", "jit", "hand-written")]
    public string Engine { get; set; } = "";

    /// <summary>What is attached.</summary>
    [Params("no_program", "trivial", "redir_port", "dispatcher_10k", "chain4")]
    public string Setup { get; set; } = "";

    /// <summary>Threads doing lookups.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Builds the namespace, attaches the programs, checks one lookup, starts the threads.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        Suite.InstallVerifier();
        bool listener = Setup is "no_program" or "trivial";
        _suite = SuiteCases.Create(listener ? "redir_port" : Setup);
        if (listener)
        {
            // The listener bound to 127.0.0.1:30000 (socket 0) answers; the trivial program (from its own
            // case: it has no maps) passes without selecting.
            _packet = _suite.TimedPacket with { To = _suite.Sockets[0].Local!.Value };
            if (Setup == "trivial")
            {
                _programCase = SuiteCases.Create("trivial");
                foreach (var p in Suite.Load(_programCase, Engine)) _suite.Namespace.SkLookup.Attach(p);
            }
        }
        else
        {
            foreach (var p in Suite.Load(_suite, Engine)) _suite.Namespace.SkLookup.Attach(p);
            _packet = _suite.TimedPacket;
        }
        var r = _suite.Namespace.Lookup(_packet);
        _expected = r.Socket ?? throw new InvalidOperationException($"{Setup}: lookup gave {r}");
        if (r.ProgramsRan != (Setup != "no_program")) throw new InvalidOperationException($"{Setup}: programs ran: {r.ProgramsRan}");
        _start = new SemaphoreSlim(0);
        _done = new CountdownEvent(Threads);
        _workers = Enumerable.Range(0, Threads).Select(_ => new Thread(Work) { IsBackground = true }).ToArray();
        foreach (var t in _workers) t.Start();
    }

    void Work()
    {
        int n = Lookups / Threads;
        var ns = _suite.Namespace;
        var packet = _packet;
        while (true)
        {
            _start.Wait();
            if (_stop) return;
            int wrong = 0;
            for (int i = 0; i < n; i++)
                if (ns.Lookup(packet).Socket != _expected) wrong++;
            if (wrong != 0) Interlocked.Add(ref _wrong, wrong);
            _done.Signal();
        }
    }

    /// <summary>Stops the threads and releases the namespace.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _start.Release(Threads);
        foreach (var t in _workers) t.Join();
        _suite.Dispose();
        _programCase?.Dispose();
        if (_wrong != 0) throw new InvalidOperationException($"{Setup}: {_wrong} lookups went elsewhere");
    }

    /// <summary>20,000 lookups over <see cref="Threads"/> threads.</summary>
    [Benchmark(OperationsPerInvoke = Lookups)]
    public void Lookup()
    {
        _done.Reset();
        _start.Release(Threads);
        _done.Wait();
    }
}

/// <summary>
/// Load latency per corpus object: parse (ObjectFile.Load), create the maps, and for every SK_LOOKUP
/// program verify, bind, rewrite and JIT-compile it, then run it once on a filled context.
/// </summary>
[MemoryDiagnoser]
public class SkLookupLoadBenchmarks
{
    SkLookupContext _ctx = null!;
    string _path = "";

    /// <summary>The object: a tests/programs file's name without <c>.o</c>, or <c>perf/NAME</c> for perf/programs.</summary>
    [ParamsSource(nameof(Objects))]
    public string Object { get; set; } = "";

    /// <summary>tests/programs/*.o and perf/programs/*.o (short names: BenchmarkDotNet cuts long parameter values).</summary>
    public static IEnumerable<string> Objects
    {
        get
        {
            string root = SuiteCases.Root();
            return Directory.GetFiles(Path.Combine(root, "tests", "programs"), "*.o").Select(p => Path.GetFileNameWithoutExtension(p))
                .Concat(Directory.GetFiles(Path.Combine(root, "perf", "programs"), "*.o").Select(p => "perf/" + Path.GetFileNameWithoutExtension(p)))
                .Order(StringComparer.Ordinal);
        }
    }

    /// <summary>The path of object <paramref name="name"/> (an <see cref="Objects"/> value).</summary>
    public static string PathOf(string name) => name.StartsWith("perf/", StringComparison.Ordinal)
        ? Path.Combine(SuiteCases.Root(), "perf", "programs", name[5..] + ".o")
        : Path.Combine(SuiteCases.Root(), "tests", "programs", name + ".o");

    /// <summary>Installs the verifier and a context.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Suite.InstallVerifier();
        _path = PathOf(Object);
        _ctx = new SkLookupContext();
        LoadAndRun();
    }

    /// <summary>Frees the context.</summary>
    [GlobalCleanup]
    public void Cleanup() => _ctx.Dispose();

    /// <summary>Parse, maps, verify, bind, compile and first call of every program of the object.</summary>
    [Benchmark]
    public int LoadAndRun()
    {
        using var obj = SuiteObject.Load(_path);
        int programs = 0;
        foreach (var spec in obj.Programs)
        {
            var program = obj.LoadProgram(spec.Name, JitEngine.Instance);
            _ctx.Fill(new Packet(SocketProtocol.Tcp,
                new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(SuiteCases.Ip4(198, 51, 100, 1)), 40000),
                new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(SuiteCases.Ip4(127, 0, 0, 1)), 7007)));
            using (MapEpoch.Protect()) program.Run(_ctx.Address);
            programs++;
        }
        return programs;
    }
}
