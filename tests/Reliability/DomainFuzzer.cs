using System.Diagnostics;
using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;
using BpfJit.Tests.Verifier;
using BpfJit.Verifier;

namespace BpfJit.Tests.Reliability;

/// <summary>A program on which BpfJit and the kernel disagree, as generated and shrunk.</summary>
/// <param name="Seed">The run's seed.</param>
/// <param name="Program">The program's number in the run (with the seed, it regenerates the program).</param>
/// <param name="Message">The kernel's message (unsound) or BpfJit's (over-strict).</param>
/// <param name="Source">The generated program.</param>
/// <param name="Minimised">The program shrunk while the disagreement and its message shape hold.</param>
/// <param name="Kind">For an unsound accept, "dead path" or "reached" (<see cref="DomainFuzzer"/>); empty otherwise.</param>
/// <param name="Type">The program type it was generated and loaded as.</param>
public sealed record DomainFinding(int Seed, long Program, string Message, string Source, string Minimised, string Kind = "", ProgramType Type = ProgramType.SkLookup)
{
    /// <summary>The finding as a verifier corpus case (tests/Verifier/cases format) expecting the kernel's verdict.</summary>
    public string ToCorpusCase(string name, bool kernelRejects) =>
        $"## name: {name}\n" + (Type == ProgramType.SkReuseport ? "## section: sk_reuseport\n" : "") +
        $"## maps: {DomainFuzzer.CorpusMapsFor(Type)}\n## expect: {(kernelRejects ? "reject " + Message : "accept")}\n" +
        Regex.Replace(Minimised, @"ldmap (%r\d), (\d)", "ldmap $1, m$2").TrimEnd('\n') + "\n";
}

/// <summary>How often one kind of kernel-object use (a <c># F:</c> tag of the generator) was drawn, reached and judged alike.</summary>
public sealed class FeatureCount
{
    /// <summary>Programs that contain it; of them, those in which BpfJit's verifier reached one of its instructions.</summary>
    public long Programs, Reached;
    /// <summary>Of the programs compared with the kernel: verdicts equal (accept / reject), unsound, over-strict.</summary>
    public long AgreeAccept, AgreeReject, Unsound, OverStrict;

    /// <inheritdoc />
    public override string ToString()
    {
        long compared = AgreeAccept + AgreeReject + Unsound + OverStrict;
        string agreement = compared == 0 ? "not compared" : $"agreement {100.0 * (AgreeAccept + AgreeReject) / compared:0.000}%";
        return $"{Programs} programs, {Reached} reached by BpfJit; {AgreeAccept} + {AgreeReject} agree (accept + reject), {Unsound} unsound, {OverStrict} over-strict; {agreement}";
    }
}

/// <summary>What a run of <see cref="DomainFuzzer"/> found.</summary>
public sealed class DomainFuzzReport
{
    /// <summary>Programs generated and verified by BpfJit.</summary>
    public long Generated;
    /// <summary>Programs the kernel was asked about.</summary>
    public long KernelCompared;
    /// <summary>Both accept / both reject.</summary>
    public long AgreeAccept, AgreeReject;
    /// <summary>BpfJit accepts, the kernel rejects (a safety bug): every one counted, the first few per kernel message kept and shrunk.</summary>
    public long Unsound;
    /// <summary>Unsound accepts where BpfJit never reached the instruction the kernel refused (it proved the path dead).</summary>
    public long UnsoundDeadPath;
    /// <summary>The kernel accepts, BpfJit rejects.</summary>
    public long OverStrict;
    /// <summary>The kernel fails with its own internal error ("verifier bug"); not a verdict.</summary>
    public long KernelBugs;
    /// <summary>Per kernel-object kind (<see cref="DomainProgramGenerator.Features"/>): how many programs held it, reached it in BpfJit, and how they were judged.</summary>
    public readonly SortedDictionary<string, FeatureCount> Features = new(StringComparer.Ordinal);
    /// <summary>Unsound accepts, shrunk (at most a few per kernel message shape).</summary>
    public readonly List<DomainFinding> UnsoundFindings = [];
    /// <summary>Over-strict rejections, shrunk (at most a few per BpfJit message shape).</summary>
    public readonly List<DomainFinding> OverStrictFindings = [];
    /// <summary>Count per message shape (numbers as N): unsound by the kernel's message, over-strict by BpfJit's.</summary>
    public readonly Dictionary<string, long> UnsoundShapes = [], OverStrictShapes = [];
    /// <summary>BpfJit's rejection messages (numbers as N) on programs both reject: what the generator exercises.</summary>
    public readonly Dictionary<string, long> AgreedRejections = [];
    /// <summary>The first program number of each agreed rejection shape (to look at what the generator produces).</summary>
    public readonly Dictionary<string, long> RejectionExamples = [];
    /// <summary>Exceptions BpfJit's verifier threw (a verifier must always give a verdict).</summary>
    public readonly List<string> Exceptions = [];
    /// <summary>Time in BpfJit's verifier and in the kernel's.</summary>
    public TimeSpan VerifyTime, KernelTime;
    /// <summary>The program BpfJit's verifier took longest on, and the milliseconds it took (and the kernel's).</summary>
    public (long Program, long Ms, long KernelMs) SlowestVerify;

    /// <summary>Verdicts equal to the kernel's, as a percentage of the programs compared.</summary>
    public double AgreementPercent => KernelCompared == 0 ? 0 : 100.0 * (AgreeAccept + AgreeReject) / KernelCompared;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Generated} generated, {KernelCompared} compared with the kernel: {AgreeAccept + AgreeReject} agree ({AgreeAccept} accept, {AgreeReject} reject), " +
        $"{Unsound} unsound ({UnsoundDeadPath} on paths BpfJit proved dead), {OverStrict} over-strict, {KernelBugs} kernel internal errors, {Exceptions.Count} verifier exceptions; " +
        $"agreement {AgreementPercent:0.000}%; time: BpfJit {VerifyTime.TotalSeconds:0.0} s, kernel {KernelTime.TotalSeconds:0.0} s";
}

/// <summary>
/// Kernel-differential fuzzing of the verifier's abstract domain (docs/reliability.md, "Domain fuzzing"):
/// every program from <see cref="DomainProgramGenerator"/> is verified by BpfJit and loaded by the live
/// kernel as SK_LOOKUP with the same maps, and the verdicts are classified as agree, unsound (BpfJit
/// accepts, the kernel rejects) or over-strict (the kernel accepts, BpfJit rejects). Program
/// <c>n</c> of seed <c>S</c> depends only on (S, n), so a run is resumable and splittable by program ranges.
/// </summary>
public sealed class DomainFuzzer : IDisposable
{
    /// <summary>The <c>## maps:</c> line of a corpus case for <see cref="DomainProgramGenerator.Maps"/>.</summary>
    public const string CorpusMaps = "m0:ARRAY:4:48:4, m1:HASH:4:16:4:lock=0, m2:RINGBUF:0:0:4096, m3:ARRAY:4:16:2:lock=8, m4:TASK_STORAGE:4:16:0:1, m5:CGRP_STORAGE:4:16:0:1, m6:CGROUP_ARRAY:4:4:4";

    /// <summary>The <c>## maps:</c> line of a corpus case for the maps of <paramref name="type"/>'s generator.</summary>
    public static string CorpusMapsFor(ProgramType type) => type == ProgramType.SkReuseport ? ReuseportProgramGenerator.CorpusMaps : CorpusMaps;

    /// <summary>The maps the generator of <paramref name="type"/> uses.</summary>
    public static MapInfo[] MapsFor(ProgramType type) => type == ProgramType.SkReuseport ? ReuseportProgramGenerator.Maps : DomainProgramGenerator.Maps;

    /// <summary>Findings kept (and shrunk) per message shape; the rest are only counted.</summary>
    const int KeepPerShape = 3;

    readonly int[]? _kernelMaps;
    readonly bool _minimise;
    readonly ProgramType _type;
    readonly MapInfo[] _maps;

    /// <summary>
    /// Creates the kernel's maps when <paramref name="kernel"/> and the kernel is usable; <paramref name="minimise"/> shrinks kept findings;
    /// <paramref name="type"/> picks the generator and the program type the kernel loads (SK_LOOKUP or SK_REUSEPORT).
    /// </summary>
    public DomainFuzzer(bool kernel, bool minimise = true, ProgramType type = ProgramType.SkLookup)
    {
        _minimise = minimise;
        _type = type;
        _maps = MapsFor(type);
        if (!kernel || !KernelBpf.Available) return;
        // Local-storage maps need BTF key and value types even without a lock.
        var fds = _maps.Select(m => m.SpinLockOffset >= 0 || m.Type is MapType.TaskStorage or MapType.CgrpStorage
            ? KernelBtf.CreateMapWithSpinLock((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags, m.SpinLockOffset)
            : KernelBpf.CreateMap((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags)).ToArray();
        if (fds.All(fd => fd >= 0)) _kernelMaps = fds;
        else
        {
            foreach (int fd in fds.Where(fd => fd >= 0)) KernelBpf.Close(fd);
            UnavailableReason = "creating the fuzzer's maps failed: errno " + -fds.First(fd => fd < 0);
        }
    }

    /// <summary>True when verdicts are compared with the kernel's.</summary>
    public bool KernelAvailable => _kernelMaps != null;

    /// <summary>Why the kernel is not compared, when it is not.</summary>
    public string? UnavailableReason { get; } = KernelBpf.Available ? null : "kernel oracle unavailable";

    /// <summary>The random source for program <paramref name="n"/> of seed <paramref name="seed"/> (SplitMix64 of both, so ranges of one run are independent).</summary>
    public static Random ProgramRandom(int seed, long n)
    {
        ulong z = ((ulong)(uint)seed << 40) ^ (ulong)n;
        z += 0x9e3779b97f4a7c15;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        z ^= z >> 31;
        return new Random((int)(z & 0x7fffffff));
    }

    /// <summary>The source of program <paramref name="n"/> of seed <paramref name="seed"/> (an SK_LOOKUP program, or one of <paramref name="type"/>).</summary>
    public static string Program(int seed, long n, ProgramType type = ProgramType.SkLookup) => type == ProgramType.SkReuseport
        ? ReuseportProgramGenerator.Generate(ProgramRandom(seed, n))
        : DomainProgramGenerator.Generate(ProgramRandom(seed, n));

    /// <summary>Checks programs [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) of <paramref name="seed"/>; <paramref name="progress"/> hears about every 1,000th and every finding.</summary>
    public DomainFuzzReport Run(int seed, long start, long count, Action<string>? progress = null)
    {
        var report = new DomainFuzzReport();
        var clock = Stopwatch.StartNew();
        for (long n = start; n < start + count; n++)
        {
            string source = Program(seed, n, _type);
            Check(seed, n, source, report, progress);
            if (progress != null && (n - start + 1) % 1000 == 0)
                progress($"[{DateTime.UtcNow:HH:mm:ss}] seed {seed} programs {start}..{n}: {report} ({(n - start + 1) / clock.Elapsed.TotalSeconds:0} programs/s)");
        }
        return report;
    }

    /// <summary>BpfJit's verdict on a program, with the fuzzer's maps.</summary>
    VerifierResult Verify(Instruction[] code) =>
        BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions
        {
            Helpers = SkLookupTestHelpers.Table, Maps = _maps, LogLevel = 0, ProgramType = _type, KernelFunctions = DomainProgramGenerator.KernelFunctionNames,
        });

    /// <summary>The kernel's verdict on a program loaded as the fuzzer's program type (SK_REUSEPORT expects BPF_SK_REUSEPORT_SELECT).</summary>
    BpfJit.Baselines.KernelBpf.LoadResult KernelLoad(Instruction[] code, int logLevel)
    {
        if (code.Any(i => i.IsCall && i.Src == (byte)CallKind.Kfunc)) code = KernelBtf.ResolveKfuncs(code, DomainProgramGenerator.KernelFunctionNames);
        return _type == ProgramType.SkLookup
            ? KernelBpf.Load(code, _kernelMaps!, logLevel)
            : KernelBpf.Load(code, _kernelMaps!, _type, AttachType.SkReuseportSelect, logLevel);
    }

    void Check(int seed, long n, string source, DomainFuzzReport report, Action<string>? progress)
    {
        Instruction[] code;
        int[] lineSlots;
        try { code = DomainProgramGenerator.Assemble(source, out lineSlots); }
        catch (BpfException e)
        {
            report.Exceptions.Add($"seed {seed}, program {n}: the generator wrote what does not assemble: {e.Message}\n{source}");
            return;
        }
        report.Generated++;
        var clock = Stopwatch.StartNew();
        VerifierResult verdict;
        try { verdict = Verify(code); }
        catch (Exception e)
        {
            report.Exceptions.Add($"seed {seed}, program {n}: {e.GetType().Name}: {e.Message}\n{source}");
            return;
        }
        finally { report.VerifyTime += clock.Elapsed; }
        long verifyMs = clock.ElapsedMilliseconds;
        if (verifyMs > report.SlowestVerify.Ms) report.SlowestVerify = (n, verifyMs, -1);
        var features = CountFeatures(source, lineSlots, verdict, report);
        if (_kernelMaps == null) { Count(report.AgreedRejections, verdict.Accepted ? null : verdict.Error); return; }
        clock.Restart();
        var kernel = KernelLoad(code, logLevel: 0);
        foreach (var f in features)
        {
            if (kernel.Accepted == verdict.Accepted) { if (verdict.Accepted) f.AgreeAccept++; else f.AgreeReject++; }
            else if (kernel.Accepted) f.OverStrict++;
            else f.Unsound++;
        }
        report.KernelTime += clock.Elapsed;
        if (report.SlowestVerify.Program == n) report.SlowestVerify.KernelMs = clock.ElapsedMilliseconds;
        report.KernelCompared++;
        if (kernel.Accepted == verdict.Accepted)
        {
            if (verdict.Accepted) report.AgreeAccept++;
            else
            {
                report.AgreeReject++;
                if (Count(report.AgreedRejections, verdict.Error) == 1) report.RejectionExamples[Shape(verdict.Error ?? "")] = n;
            }
            return;
        }
        if (kernel.Accepted)
        {
            report.OverStrict++;
            string shape = Shape(verdict.Error ?? "");
            if (Count(report.OverStrictShapes, verdict.Error) <= KeepPerShape)
            {
                string small = Shrink(source, c => { var v = Verify(c); return !v.Accepted && Shape(v.Error ?? "") == shape && KernelLoad(c, 0).Accepted; });
                report.OverStrictFindings.Add(new DomainFinding(seed, n, verdict.Error ?? "", source, small, Type: _type));
                progress?.Invoke($"over-strict: seed {seed} program {n}: BpfJit: {verdict.Error}");
            }
            return;
        }
        var (message, path) = KernelVerdict(code);
        if (message.StartsWith("verifier bug", StringComparison.Ordinal)) { report.KernelBugs++; return; }
        report.Unsound++;
        string kind = UnsoundKind(verdict, path);
        if (kind == "dead path") report.UnsoundDeadPath++;
        if (Count(report.UnsoundShapes, $"[{kind}] {message}") <= KeepPerShape)
        {
            string shape = Shape(message);
            string small = Shrink(source, c =>
            {
                var v = Verify(c);
                if (!v.Accepted) return false;
                var (m, i) = KernelVerdict(c);
                return Shape(m) == shape && UnsoundKind(v, i) == kind;
            });
            report.UnsoundFindings.Add(new DomainFinding(seed, n, KernelVerdict(DomainProgramGenerator.Assemble(small)).Message, source, small, kind, _type));
            progress?.Invoke($"UNSOUND ({kind}): seed {seed} program {n}: kernel: {message}\n{small}");
        }
    }

    /// <summary>
    /// The kinds of kernel-object use a program holds (its <c># F:name</c> tags), counted in <paramref name="report"/>:
    /// reached when BpfJit's verifier reached the instruction of one of its tags.
    /// </summary>
    static List<FeatureCount> CountFeatures(string source, int[] lineSlots, VerifierResult verdict, DomainFuzzReport report)
    {
        var found = new Dictionary<string, bool>(StringComparer.Ordinal);
        var lines = source.Split('\n');
        for (int n = 0; n < lines.Length; n++)
        {
            int tag = lines[n].IndexOf("# F:", StringComparison.Ordinal);
            if (tag < 0) continue;
            string name = lines[n][(tag + 4)..].Trim();
            int slot = lineSlots[n];
            bool reached = slot < verdict.Facts.Count && verdict.Facts[slot].Reachable;
            found[name] = found.GetValueOrDefault(name) || reached;
        }
        var counts = new List<FeatureCount>();
        foreach (var (name, reached) in found)
        {
            if (!report.Features.TryGetValue(name, out var c)) report.Features[name] = c = new FeatureCount();
            c.Programs++;
            if (reached) c.Reached++;
            counts.Add(c);
        }
        return counts;
    }

    /// <summary>
    /// The kernel's error line (the last before "processed N insns"), or "accepted", and the slots of the path
    /// it refused: the instructions its level-1 log printed since it last resumed a pushed branch ("from X to Y").
    /// </summary>
    (string Message, int[] Path) KernelVerdict(Instruction[] code)
    {
        var k = KernelLoad(code, logLevel: 1);
        if (k.Accepted) return ("accepted", []);
        var lines = k.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var last = lines.Reverse().SkipWhile(l => l.StartsWith("processed ", StringComparison.Ordinal) || l.StartsWith("verification time", StringComparison.Ordinal) || l.StartsWith("stack depth", StringComparison.Ordinal)).FirstOrDefault();
        var path = new List<int>();
        foreach (var line in lines)
        {
            if (line.StartsWith("from ", StringComparison.Ordinal)) { path.Clear(); continue; }
            var m = Regex.Match(line, @"^(\d+): \(");
            if (m.Success) path.Add(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        return (last ?? $"errno {k.Errno}", [.. path]);
    }

    /// <summary>
    /// The kind of an unsound accept: "dead path" when BpfJit never reached some instruction of the path the
    /// kernel refused (BpfJit proved a branch on it infeasible, the kernel could not), else "reached" (BpfJit
    /// walked that path and let it through, or pruned it against a state that does not cover it).
    /// </summary>
    static string UnsoundKind(VerifierResult verdict, int[] kernelPath) =>
        kernelPath.Any(i => i >= 0 && i < verdict.Facts.Count && !verdict.Facts[i].Reachable) ? "dead path" : "reached";

    /// <summary>A message with its numbers replaced by N: findings of one shape are one mechanism, mostly.</summary>
    public static string Shape(string message) => Regex.Replace(message, "(0x)?[0-9a-f]*[0-9][0-9a-f]*", "N");

    static long Count(Dictionary<string, long> histogram, string? message)
    {
        if (message == null) return 0;
        string key = Shape(message);
        return histogram[key] = histogram.GetValueOrDefault(key) + 1;
    }

    /// <summary>Shrinks a program by source lines (never labels) while <paramref name="stillFails"/> holds, when minimising is on.</summary>
    string Shrink(string source, Func<Instruction[], bool> stillFails) =>
        _minimise ? LineMinimiser.Minimise(source, stillFails, DomainProgramGenerator.Assemble) : source;

    /// <inheritdoc />
    public void Dispose()
    {
        if (_kernelMaps != null) foreach (int fd in _kernelMaps) KernelBpf.Close(fd);
    }
}
