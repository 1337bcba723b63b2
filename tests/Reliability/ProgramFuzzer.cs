using System.Buffers.Binary;
using System.Text;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Reliability;

/// <summary>What one batch of <see cref="ProgramFuzzer"/> found.</summary>
public sealed class FuzzReport
{
    /// <summary>Programs generated.</summary>
    public int Generated;
    /// <summary>Programs BpfJit's verifier accepted.</summary>
    public int Accepted;
    /// <summary>Runs (program × context × engine pair) compared.</summary>
    public int Runs;
    /// <summary>Programs the kernel was asked about.</summary>
    public int KernelCompared;
    /// <summary>Verdicts equal to the kernel's.</summary>
    public int KernelAgree;
    /// <summary>Kernel accepts, BpfJit rejects: counted and listed, not failures.</summary>
    public readonly List<string> KernelOnlyAccepts = [];
    /// <summary>
    /// BpfJit accepts, and the kernel fails with its own internal-error message ("verifier bug: ..."): a
    /// kernel bug, not a safety verdict (such a program still runs on both engines and in checked mode
    /// here). Counted and listed, not failures.
    /// </summary>
    public readonly List<string> KernelBugs = [];
    /// <summary>
    /// BpfJit accepts what a kernel build other than <see cref="KernelOracle.RecordedRelease"/> rejects: reported
    /// as a warning, not failed (a failure on the recorded build or with BPFJIT_KERNEL_STRICT=1).
    /// </summary>
    public readonly List<string> KernelDiffers = [];
    /// <summary>Failures: BpfJit accepts what the kernel rejects, checked-mode faults, engine disagreements, unexpected exceptions.</summary>
    public readonly List<string> Failures = [];
    /// <summary>Checked-mode faults among the failures.</summary>
    public int CheckedFaults;
    /// <summary>Time in BpfJit's verifier, in preparing and running both engines, and in the kernel's verifier.</summary>
    public TimeSpan VerifyTime, ExecuteTime, KernelTime;
    /// <summary>BpfJit's rejection messages (numbers replaced by N) and how often each occurred.</summary>
    public readonly Dictionary<string, int> Rejections = [];
    /// <summary>The slowest verification: milliseconds and program number.</summary>
    public (long Ms, int Program, string Verdict, string Code) SlowestVerify;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Generated} generated, {Accepted} accepted, {Runs} runs compared, {CheckedFaults} checked-mode faults, {Failures.Count} failures; " +
        $"kernel: {KernelCompared} compared, {KernelAgree} agree, {KernelOnlyAccepts.Count} accepted only by the kernel, {KernelBugs.Count} kernel internal errors; " +
        $"time: verifier {VerifyTime.TotalSeconds:0.0} s, engines {ExecuteTime.TotalSeconds:0.0} s, kernel {KernelTime.TotalSeconds:0.0} s";
}

/// <summary>
/// Program fuzzing (docs/reliability.md): every generated program goes through BpfJit's verifier;
/// every accepted one runs on the interpreter and on the checked-mode JIT over random contexts, each
/// engine with its own identically populated maps, and must give the same verdict, selected socket,
/// map contents and ring-buffer records with no checked-mode fault. Where the kernel is reachable
/// its verdict is compared too. A failure names the seed and program number and shows the program
/// shrunk by <see cref="DeltaMinimiser"/>.
/// </summary>
public sealed class ProgramFuzzer : IDisposable
{
    /// <summary>The maps programs refer to by index: type, key size, value size, max entries, flags.</summary>
    public static readonly (MapType Type, int Key, int Value, int Max, uint Flags)[] MapShapes =
    [
        (MapType.Hash, 4, 16, 8, 0), (MapType.Array, 4, 12, 2, 0), (MapType.SockMap, 4, 8, 8, 0), (MapType.RingBuf, 0, 0, 4096, 0), (MapType.LpmTrie, 8, 8, 16, 1),
    ];

    static readonly JitEngine s_checked = new(new JitOptions { Checked = true });

    readonly NetNamespace _ns = new();
    readonly List<Sock> _sockets = [];
    readonly HelperTable _helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
    List<BpfMap> _interpreterMaps, _jitMaps;
    readonly MapInfo[] _infos;
    readonly List<int>? _kernelMaps;

    /// <summary>Creates the sockets and both sets of maps; <paramref name="kernel"/> also creates the maps in the kernel.</summary>
    public ProgramFuzzer(bool kernel)
    {
        _sockets.Add(_ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp));
        _sockets[0].Bind(SkLookup.SkTestSupport.Ep("127.0.0.1:7000"));
        _sockets[0].Listen();
        _sockets.Add(_ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp));
        _sockets[1].Bind(SkLookup.SkTestSupport.Ep("127.0.0.1:7001"));
        _sockets.Add(_ns.Sockets.Create(SocketFamily.Inet6, SocketProtocol.Tcp));
        _interpreterMaps = CreateMaps();
        _jitMaps = CreateMaps();
        _infos = [.. _interpreterMaps.Select(m => new MapInfo(m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags))];
        if (kernel && KernelBpf.Available)
        {
            _kernelMaps = [.. MapShapes.Select(s => KernelBpf.CreateMap((uint)s.Type, s.Key, s.Value, s.Max, s.Flags))];
            if (_kernelMaps.Any(fd => fd < 0)) { foreach (int fd in _kernelMaps.Where(fd => fd >= 0)) KernelBpf.Close(fd); _kernelMaps = null; }
        }
    }

    /// <summary>True when verdicts are compared with the kernel's.</summary>
    public bool KernelAvailable => _kernelMaps != null;

    /// <summary>Replaces both engines' maps with freshly populated ones.</summary>
    void ResetMaps()
    {
        foreach (var m in _interpreterMaps.Concat(_jitMaps)) m.Dispose();
        _interpreterMaps = CreateMaps();
        _jitMaps = CreateMaps();
    }

    List<BpfMap> CreateMaps()
    {
        var maps = MapShapes.Select((s, i) => MapFactory.Create(s.Type, s.Key, s.Value, s.Max, s.Flags, $"m{i}")).ToList();
        for (uint k = 0; k < 4; k++)
            maps[0].Update(BitConverter.GetBytes(k), Enumerable.Range(0, 16).Select(b => (byte)(k * 16 + b)).ToArray());
        maps[1].Update(BitConverter.GetBytes(0u), Enumerable.Repeat((byte)0x5a, 12).ToArray());
        var sockmap = (SockMap)maps[2];
        for (int s = 0; s < _sockets.Count; s++) sockmap.Update((uint)s, _sockets[s]);
        maps[4].Update([24, 0, 0, 0, 10, 0, 0, 0], BitConverter.GetBytes(0x1111UL));
        maps[4].Update([16, 0, 0, 0, 10, 1, 0, 0], BitConverter.GetBytes(0x2222UL));
        return maps;
    }

    /// <summary>Generates and checks <paramref name="count"/> programs from <paramref name="seed"/>, <paramref name="contexts"/> contexts each.</summary>
    public FuzzReport Run(int seed, int count, int contexts = 3)
    {
        var report = new FuzzReport();
        var rng = new Random(seed);
        for (int n = 0; n < count; n++)
        {
            var (_, code) = SkLookupProgramGenerator.Generate(rng);
            int contextSeed = rng.Next();
            report.Generated++;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var verdict = Verify(code);
            report.VerifyTime += clock.Elapsed;
            if (_kernelMaps != null) CompareWithKernel(code, verdict, seed, n, report);
            if (clock.ElapsedMilliseconds > report.SlowestVerify.Ms) report.SlowestVerify = (clock.ElapsedMilliseconds, n, verdict.Error ?? "accepted", Disassembler.Disassemble(code));
            if (!verdict.Accepted)
            {
                string reason = System.Text.RegularExpressions.Regex.Replace(verdict.Error ?? "", "[0-9]+", "N");
                report.Rejections[reason] = report.Rejections.GetValueOrDefault(reason) + 1;
                continue;
            }
            report.Accepted++;
            clock.Restart();
            string? problem = Execute(code, contextSeed, contexts, report, compare: !verdict.MayExposeAddresses);
            report.ExecuteTime += clock.Elapsed;
            if (problem == null) continue;
            if (problem.Contains("checked mode")) report.CheckedFaults++;
            // Each attempt starts from fresh maps, as the failing run did not (and the failure may have changed them).
            var small = DeltaMinimiser.Minimise(code, c => { ResetMaps(); var v = Verify(c); return v.Accepted && Execute(c, contextSeed, contexts, null, compare: !v.MayExposeAddresses) != null; }, budget: 400);
            ResetMaps();
            report.Failures.Add($"seed {seed}, program {n}: {problem}\nminimised:\n{Disassembler.Disassemble(small)}\noriginal:\n{Disassembler.Disassemble(code)}");
        }
        return report;
    }

    VerifierResult Verify(Instruction[] code) =>
        BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = _helpers, Maps = _infos, LogLevel = 0 });

    void CompareWithKernel(Instruction[] code, VerifierResult verdict, int seed, int n, FuzzReport report)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var kernel = KernelBpf.Load(code, _kernelMaps!, logLevel: 0);
        report.KernelTime += clock.Elapsed;
        report.KernelCompared++;
        if (kernel.Accepted == verdict.Accepted) { report.KernelAgree++; return; }
        if (kernel.Accepted)
        {
            report.KernelOnlyAccepts.Add($"program {n}: BpfJit: {verdict.Error}");
            return;
        }
        kernel = KernelBpf.Load(code, _kernelMaps!, logLevel: 1);
        string last = kernel.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Reverse().Skip(1).FirstOrDefault() ?? $"errno {kernel.Errno}";
        if (last.StartsWith("verifier bug", StringComparison.Ordinal))
        {
            report.KernelBugs.Add($"program {n}: kernel: {last}");
            return;
        }
        var small = DeltaMinimiser.Minimise(code, c => Verify(c).Accepted && !KernelBpf.Load(c, _kernelMaps!, logLevel: 0).Accepted, budget: 300);
        // On a kernel build other than the one this batch was checked on, a different answer is reported, not failed.
        (KernelOracle.IsStrict(KernelOracle.RecordedRelease) ? report.Failures : report.KernelDiffers).Add($"seed {seed}, program {n}: BpfJit accepts what the kernel rejects ({last})\nminimised:\n{Disassembler.Disassemble(small)}");
    }

    /// <summary>
    /// Runs an accepted program on both engines; null when they agree and nothing faulted, else what went wrong.
    /// Without <paramref name="compare"/> (a program that turns addresses into data: each engine's differ) only
    /// faults count, and the maps are reset after it so later programs start equal.
    /// </summary>
    string? Execute(Instruction[] code, int contextSeed, int contexts, FuzzReport? report, bool compare)
    {
        SkLookupProgram interpreter, jit;
        try
        {
            interpreter = SkLookupProgram.Load("fuzz", ProgramBinder.Bind(code, _interpreterMaps).Code, InterpreterEngine.Instance, _helpers);
            jit = SkLookupProgram.Load("fuzz", ProgramBinder.Bind(code, _jitMaps).Code, s_checked, _helpers);
        }
        catch (Exception e)
        {
            return $"preparing an accepted program threw {e.GetType().Name}: {e.Message}";
        }
        var rng = new Random(contextSeed);
        for (int k = 0; k < contexts; k++)
        {
            var ctx = RandomContext(rng);
            TestRunResult a, b;
            try { a = SkLookupTestRun.Run(interpreter, TestRunRequest.WithContext(ctx)); }
            catch (Exception e) { return $"interpreter threw {e.GetType().Name}: {e.Message}"; }
            try { b = SkLookupTestRun.Run(jit, TestRunRequest.WithContext(ctx)); }
            catch (BpfCheckedModeException e) { return e.Message; }
            catch (Exception e) { return $"checked JIT threw {e.GetType().Name}: {e.Message}"; }
            if (!compare) continue;
            if (report != null) report.Runs++;
            if (a.Error != b.Error || a.Retval != b.Retval || a.Cookie != b.Cookie)
                return $"engines disagree on ctx {Convert.ToHexString(ctx)}: interpreter error {a.Error} retval {a.Retval} cookie {a.Cookie}, jit error {b.Error} retval {b.Retval} cookie {b.Cookie}";
            string? maps = CompareMaps();
            if (maps != null) return $"after ctx {Convert.ToHexString(ctx)}: {maps}";
        }
        if (!compare) ResetMaps();
        return null;
    }

    /// <summary>Compares the two engines' map contents (and drains their ring buffers); on a difference, resets both.</summary>
    string? CompareMaps()
    {
        string? problem = null;
        for (int m = 0; m < MapShapes.Length && problem == null; m++)
        {
            var x = _interpreterMaps[m];
            var y = _jitMaps[m];
            if (x is RingBufMap rx && y is RingBufMap ry)
            {
                var left = new List<string>();
                var right = new List<string>();
                rx.Consume(r => left.Add(Convert.ToHexString(r)));
                ry.Consume(r => right.Add(Convert.ToHexString(r)));
                if (!left.SequenceEqual(right)) problem = $"ring buffer records differ: [{string.Join(",", left)}] vs [{string.Join(",", right)}]";
                continue;
            }
            if (x.Type is not (MapType.Hash or MapType.Array)) continue;
            for (int key = -1; key < 6 && problem == null; key++)
            {
                var kb = BitConverter.GetBytes(key);
                var vx = new byte[x.ValueSize];
                var vy = new byte[y.ValueSize];
                int ex = x.Lookup(kb, vx), ey = y.Lookup(kb, vy);
                if (ex != ey || !vx.AsSpan().SequenceEqual(vy)) problem = $"map {x.Name} key {key}: {ex}/{Convert.ToHexString(vx)} vs {ey}/{Convert.ToHexString(vy)}";
            }
        }
        return problem;
    }

    /// <summary>A valid 72-byte context for BPF_PROG_TEST_RUN: IPv4 or IPv6, TCP or UDP, random addresses and ports.</summary>
    public static byte[] RandomContext(Random rng)
    {
        var ctx = new byte[SkLookupLayout.Size];
        bool v6 = rng.Next(3) == 0;
        BinaryPrimitives.WriteUInt32LittleEndian(ctx.AsSpan(SkLookupLayout.Family), v6 ? 10u : 2u);
        BinaryPrimitives.WriteUInt32LittleEndian(ctx.AsSpan(SkLookupLayout.Protocol), rng.Next(2) == 0 ? 6u : 17u);
        rng.NextBytes(ctx.AsSpan(SkLookupLayout.RemoteIp4, 4));
        rng.NextBytes(ctx.AsSpan(SkLookupLayout.RemoteIp6, 16));
        rng.NextBytes(ctx.AsSpan(SkLookupLayout.RemotePort, 2));
        rng.NextBytes(ctx.AsSpan(SkLookupLayout.LocalIp4, 4));
        rng.NextBytes(ctx.AsSpan(SkLookupLayout.LocalIp6, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(ctx.AsSpan(SkLookupLayout.LocalPort), (uint)rng.Next(0, 65536));
        if (!v6) { ctx.AsSpan(SkLookupLayout.RemoteIp6, 16).Clear(); ctx.AsSpan(SkLookupLayout.LocalIp6, 16).Clear(); }
        return ctx;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var m in _interpreterMaps.Concat(_jitMaps)) m.Dispose();
        foreach (var s in _sockets) s.Close();
        if (_kernelMaps != null) foreach (int fd in _kernelMaps) KernelBpf.Close(fd);
        MapEpoch.Collect();
    }
}
