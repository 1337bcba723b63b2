using System.Globalization;
using System.Text.RegularExpressions;

namespace BpfJit.KernelSelftests;

/// <summary>
/// Prints the comparison: agreement per file, every disagreement with both verdicts, BpfJit's message
/// and the kernel's last log lines, the programs either side could not load grouped by reason, the
/// files that did not compile, and the totals.
/// </summary>
public static partial class Report
{
    /// <summary>Counts of each outcome over <paramref name="results"/>.</summary>
    public static IReadOnlyDictionary<Outcome, int> Totals(IEnumerable<ProgramComparison> results) =>
        Enum.GetValues<Outcome>().ToDictionary(o => o, o => results.Count(r => r.Outcome == o));

    /// <summary>Writes the whole report.</summary>
    public static void Write(TextWriter o, IReadOnlyList<ProgramComparison> results, IReadOnlyList<(string File, string Reason)> compileFailures)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(compileFailures);
        var inv = CultureInfo.InvariantCulture;
        o.WriteLine("== per file (agree/programs, unsound, over-strict, not loadable by BpfJit, no kernel verdict)");
        foreach (var file in results.GroupBy(r => r.File).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var t = Totals(file);
            o.WriteLine(string.Create(inv, $"{file.Key,-40} {t[Outcome.Agree],4}/{file.Count(),-4} unsound {t[Outcome.Unsound],3}  over-strict {t[Outcome.OverStrict],3}  not-loadable {t[Outcome.NotLoadable] + t[Outcome.VerifierCrash],3}  no-kernel {t[Outcome.KernelNotLoaded],3}"));
        }

        foreach (var kind in new[] { Outcome.Unsound, Outcome.OverStrict, Outcome.VerifierCrash })
        {
            var list = results.Where(r => r.Outcome == kind).ToList();
            if (list.Count == 0) continue;
            o.WriteLine();
            o.WriteLine(string.Create(inv, $"== {Name(kind)} ({list.Count})"));
            foreach (var r in list)
            {
                o.WriteLine($"{r.File} {r.Program} (SEC \"{r.Section}\"): kernel {Verdict(r.Kernel)}, BpfJit {(r.BpfJit.Loaded ? r.BpfJit.Accepted ? "accepts" : "rejects" : "crashes")}");
                if (!r.BpfJit.Accepted) o.WriteLine($"    BpfJit: {r.BpfJit.Error}");
                foreach (var line in r.Kernel.LastLines(4)) o.WriteLine($"    kernel: {line}");
            }
        }

        WriteGroups(o, "not loadable by BpfJit (loader refused), by reason", results.Where(r => r.Outcome == Outcome.NotLoadable).Select(r => (r, r.BpfJit.Error)));
        WriteGroups(o, "no kernel verdict (libbpf failed before BPF_PROG_LOAD), by reason", results.Where(r => r.Outcome == Outcome.KernelNotLoaded).Select(r => (r, r.Kernel.Messages)));

        if (compileFailures.Count > 0)
        {
            o.WriteLine();
            o.WriteLine(string.Create(inv, $"== files that did not compile ({compileFailures.Count}), skipped"));
            foreach (var (file, reason) in compileFailures) o.WriteLine($"{file}: {reason}");
        }

        var total = Totals(results);
        o.WriteLine();
        o.WriteLine(string.Create(inv, $"== total: {results.Count} programs in {results.Select(r => r.File).Distinct().Count()} objects ({compileFailures.Count} files did not compile)"));
        o.WriteLine(string.Create(inv, $"agree {total[Outcome.Agree]}, unsound {total[Outcome.Unsound]}, over-strict {total[Outcome.OverStrict]}, not loadable by BpfJit {total[Outcome.NotLoadable]}, BpfJit verifier crashes {total[Outcome.VerifierCrash]}, no kernel verdict {total[Outcome.KernelNotLoaded]}"));
        int compared = total[Outcome.Agree] + total[Outcome.Unsound] + total[Outcome.OverStrict];
        if (compared > 0)
        {
            o.WriteLine(string.Create(inv, $"verdict agreement where both loaded: {100.0 * total[Outcome.Agree] / compared:F1}% ({total[Outcome.Agree]}/{compared}); kernel accepts {results.Count(r => r.Kernel.Outcome == KernelOutcome.Accepted)}, rejects {results.Count(r => r.Kernel.Outcome == KernelOutcome.Rejected)}"));
            // Both reject: does the kernel's log hold BpfJit's message (the same reason, in the kernel's words)?
            var bothReject = results.Where(r => r.Outcome == Outcome.Agree && !r.BpfJit.Accepted).ToList();
            int sameMessage = bothReject.Count(r => r.BpfJit.Error.Length > 0 && r.Kernel.Log.Contains(r.BpfJit.Error, StringComparison.Ordinal));
            o.WriteLine(string.Create(inv, $"both reject {bothReject.Count}: the kernel's log contains BpfJit's message in {sameMessage}"));
        }
    }

    /// <summary>Writes one tab-separated line per program: file, program, section, outcome, kernel verdict, BpfJit verdict, BpfJit's error, the kernel's last log line.</summary>
    public static void WriteTsv(TextWriter o, IEnumerable<ProgramComparison> results)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(results);
        foreach (var r in results)
        {
            string bpfjit = r.BpfJit.Loaded ? r.BpfJit.Accepted ? "accept" : "reject" : "refused";
            string kernelLast = r.Kernel.LastLines(1).FirstOrDefault() ?? "";
            o.WriteLine(string.Join('\t', r.File, r.Program, r.Section, r.Outcome, r.Kernel.Outcome, bpfjit, Flat(r.BpfJit.Error), Flat(kernelLast)));
        }
    }

    static string Flat(string s) => s.Replace('\t', ' ').Replace('\n', ' ');

    static void WriteGroups(TextWriter o, string title, IEnumerable<(ProgramComparison R, string Reason)> items)
    {
        var groups = items.GroupBy(x => ReasonKey(x.Reason)).OrderByDescending(g => g.Count()).ToList();
        if (groups.Count == 0) return;
        o.WriteLine();
        o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"== {title} ({groups.Sum(g => g.Count())})"));
        foreach (var g in groups)
        {
            var files = g.Select(x => x.R.File).Distinct().ToList();
            int accepts = g.Count(x => x.R.Kernel.Outcome == KernelOutcome.Accepted), rejects = g.Count(x => x.R.Kernel.Outcome == KernelOutcome.Rejected);
            o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{g.Count(),5}  {g.Key}  (kernel accepts {accepts}, rejects {rejects})"));
            o.WriteLine($"       in {string.Join(", ", files.Take(8))}{(files.Count > 8 ? $" and {files.Count - 8} more" : "")}");
        }
    }

    /// <summary>A reason with the object, section, program and symbol names and the numbers taken out, so equal causes group together.</summary>
    public static string ReasonKey(string reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        var line = reason.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase) || l.Contains("fail", StringComparison.OrdinalIgnoreCase))
            ?? reason.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        line = PathPrefix().Replace(line, "");
        line = Quoted().Replace(line, "'…'");
        line = Numbers().Replace(line, "N");
        return line.Trim();
    }

    static string Name(Outcome o) => o switch
    {
        Outcome.Unsound => "UNSOUND: BpfJit accepts, the kernel rejects",
        Outcome.OverStrict => "over-strict: the kernel accepts, BpfJit rejects",
        Outcome.VerifierCrash => "BpfJit's verifier threw",
        _ => o.ToString(),
    };

    static string Verdict(KernelVerdict k) => k.Outcome switch
    {
        KernelOutcome.Accepted => "accepts",
        KernelOutcome.Rejected => string.Create(CultureInfo.InvariantCulture, $"rejects (errno {k.Errno})"),
        _ => "no verdict",
    };

    [GeneratedRegex(@"^\S+\.o: |section \S+: |offset \S+: |program \S+: |libbpf: |prog '[^']*': ")]
    private static partial Regex PathPrefix();

    [GeneratedRegex(@"'[^']*'")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"\b(0x[0-9a-f]+|\d+)\b")]
    private static partial Regex Numbers();
}
