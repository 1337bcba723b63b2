using System.Globalization;
using System.Text;
using BpfJit.Baselines;

namespace BpfJit.Perf;

/// <summary>
/// <c>BpfJit.Perf report [--results DIR] [--svg FILE]</c>: reads the SK_LOOKUP suite's results
/// (BenchmarkDotNet's CSV reports of SkLookupProgramBenchmarks, SkLookupHookBenchmarks,
/// SkLookupLoadBenchmarks and, when present, JitVsInterpreterBenchmarks; the kernel column's
/// kernel-sklookup.csv), prints the markdown tables of docs/perf.md with the targets' verdicts, and
/// writes the chart (default docs/img/perf-sklookup.svg under the repository root).
/// </summary>
static class SuiteReport
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static int Run(string[] args)
    {
        string results = Path.Combine(Environment.CurrentDirectory, "BenchmarkDotNet.Artifacts", "results");
        string svg = Path.Combine(SuiteCases.Root(), "docs", "img", "perf-sklookup.svg");
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--results") results = args[i + 1];
            else if (args[i] == "--svg") svg = args[i + 1];
            else { Console.Error.WriteLine($"report: unknown option {args[i]}"); return 2; }
        }
        var programs = ReadBdn(Path.Combine(results, "BpfJit.Perf.SkLookupProgramBenchmarks-report.csv"));
        var hook = ReadBdn(Path.Combine(results, "BpfJit.Perf.SkLookupHookBenchmarks-report.csv"));
        var load = ReadBdn(Path.Combine(results, "BpfJit.Perf.SkLookupLoadBenchmarks-report.csv"));
        var micro = ReadBdn(Path.Combine(results, "BpfJit.Perf.JitVsInterpreterBenchmarks-report.csv"));
        var clock = ReadBdn(Path.Combine(results, "BpfJit.Perf.ClockCalibrationBenchmarks-report.csv"));
        var tiered = ReadBdn(Path.Combine(results, "BpfJit.Perf.JitTieredLatencyBenchmarks-report.csv"));
        var kernel = ReadCsv(Path.Combine(results, "kernel-sklookup.csv"));
        var md = new StringBuilder();

        double? P(string c, string method) => Mean(programs, r => r["Case"] == c && r["Method"] == method);
        double? K(string c)
        {
            var rows = kernel.Where(r => r["Case"] == c).ToArray();
            return rows.Length == 0 ? null : rows.Sum(r => double.Parse(r["MedianNs"], Inv));
        }

        if (programs.Count > 0)
        {
            md.AppendLine("| program | interpreter | JIT | hand-written | hand-written (direct call) | kernel (test_run) | JIT ÷ hand-written | interpreter ÷ JIT | kernel ÷ JIT |");
            md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (string c in SuiteCases.Names)
            {
                double? i = P(c, "Interpreter"), j = P(c, "Jit"), h = P(c, "HandWritten"), d = P(c, "HandWrittenDirect"), k = K(c);
                if (j == null) continue;
                md.AppendLine($"| {c} | {Ns(i)} | {Ns(j)} | {Ns(h)} | {Ns(d)} | {Ns(k)} | {Ratio(j, h)} | {Ratio(i, j)} | {Ratio(k, j)} |");
            }
            md.AppendLine();
        }
        if (micro.Count > 0)
        {
            // The clock of this run (ClockCalibrationBenchmarks: 80,000 dependent 1-cycle operations), when measured.
            double? cycleNs = Mean(clock, r => r["Method"] == "DependentOps80k") / 80_000;
            if (cycleNs != null) md.AppendLine(string.Create(Inv, $"Clock in this run: {1 / cycleNs:0.00} GHz (80,000 dependent one-cycle operations in {Ns(cycleNs * 80_000)})."));
            md.AppendLine();
            md.AppendLine("| ../shared/bench program | interpreter | JIT (`Run`) | interpreter ÷ JIT | JIT cycles per loop iteration |");
            md.AppendLine("| --- | ---: | ---: | ---: | ---: |");
            foreach (var name in micro.Select(r => r["Program"]).Distinct())
            {
                double? i = Mean(micro, r => r["Program"] == name && r["Method"] == "Interpreter"), j = Mean(micro, r => r["Program"] == name && r["Method"] == "Jit");
                int iterations = name switch { "loop_alu" or "stack_loop" => 1000, "helper_loop" or "nocall_loop" or "local_call_loop" => 100, _ => 0 };
                string cycles = iterations == 0 || cycleNs == null || j == null ? "–" : string.Create(Inv, $"{j / cycleNs / iterations:0.00}");
                md.AppendLine($"| {name} | {Ns(i)} | {Ns(j)} | {Ratio(i, j)} | {cycles} |");
            }
            md.AppendLine();
        }
        if (tiered.Count > 0)
        {
            md.AppendLine("| compile latency (104-slot program, one invocation per iteration) | mean | ÷ direct compile |");
            md.AppendLine("| --- | ---: | ---: |");
            double? direct = Mean(tiered, r => r["Method"] == "EmitAndFirstCall");
            foreach (var (method, label) in new[] { ("EmitAndFirstCall", "compile + first run"), ("TieredFirstCall", "`Tiered`: compile + first run"), ("TieredUntilJitted", "`Tiered`: compile + first run + switch to RyuJIT's code") })
                md.AppendLine($"| {label} | {Ns(Mean(tiered, r => r["Method"] == method))} | {Ratio(Mean(tiered, r => r["Method"] == method), direct)} |");
            md.AppendLine();
        }
        if (hook.Count > 0)
        {
            md.AppendLine("| attached | engine | 1 thread: ns per lookup | lookups/s | 2 threads: ns per lookup | lookups/s | 2 threads ÷ 1 | ÷ no program (1 thread) |");
            md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (string setup in new[] { "no_program", "trivial", "redir_port", "dispatcher_10k", "chain4" })
                foreach (string engine in new[] { "interpreter", "jit", "hand-written" })
                {
                    double? H(string t, string s = "") => Mean(hook, r => r["Setup"] == (s == "" ? setup : s) && r["Engine"] == engine && r["Threads"] == t);
                    double? one = H("1"), two = H("2"), none = H("1", "no_program");
                    if (one == null) continue;
                    md.AppendLine($"| {setup} | {engine} | {Ns(one)} | {Rate(one)} | {Ns(two)} | {Rate(two)} | {Ratio(one, two)} | {Ratio(one, none)} |");
                }
            md.AppendLine();
        }
        if (load.Count > 0)
        {
            md.AppendLine("| object | programs | parse + maps + verify + compile + first call |");
            md.AppendLine("| --- | ---: | ---: |");
            foreach (var r in load) md.AppendLine($"| {r["Object"]} | {ProgramCount(r["Object"])} | {Ns(Parse(r["Mean"]))} |");
            md.AppendLine();
        }
        Console.Write(md.ToString());
        if (programs.Count > 0)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(svg)!);
            File.WriteAllText(svg, Chart(SuiteCases.Names.Where(c => P(c, "Jit") != null)
                .Select(c => (c, new[] { P(c, "Interpreter"), P(c, "Jit"), P(c, "HandWritten"), K(c) })).ToList()));
            Console.WriteLine($"wrote {svg}");
        }
        return 0;
    }

    static int ProgramCount(string obj)
    {
        try { return BpfJit.Frontend.Elf.ObjectFile.Load(SkLookupLoadBenchmarks.PathOf(obj)).Programs.Count(p => p.IsSupported); }
        catch (Exception e) when (e is BpfJit.Frontend.BpfException or IOException) { return 0; }
    }

    static double? Mean(List<Dictionary<string, string>> rows, Func<Dictionary<string, string>, bool> where)
    {
        var row = rows.FirstOrDefault(r => { try { return where(r); } catch (KeyNotFoundException) { return false; } });
        return row == null ? null : Parse(row["Mean"]);
    }

    /// <summary>A BenchmarkDotNet time cell ("1,234.5 ns", "2.1 μs") in ns.</summary>
    static double? Parse(string cell)
    {
        var parts = cell.Replace(",", "", StringComparison.Ordinal).Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2 || !double.TryParse(parts[0], NumberStyles.Float, Inv, out double v)) return null;
        return parts[1] switch { "ns" => v, "μs" or "us" => v * 1e3, "ms" => v * 1e6, "s" => v * 1e9, _ => null };
    }

    static string Ns(double? ns) => ns switch
    {
        null => "–",
        < 10 => string.Create(Inv, $"{ns:0.00} ns"),
        < 1000 => string.Create(Inv, $"{ns:0.0} ns"),
        < 1e6 => string.Create(Inv, $"{ns / 1e3:0.00} µs"),
        _ => string.Create(Inv, $"{ns / 1e6:0.00} ms"),
    };

    static string Ratio(double? a, double? b) => a == null || b == null || b == 0 ? "–" : string.Create(Inv, $"{a / b:0.00}");

    static string Rate(double? ns) => ns == null ? "–" : string.Create(Inv, $"{1e9 / ns / 1e6:0.00} M");

    static List<Dictionary<string, string>> ReadBdn(string path) => ReadCsv(path);

    static List<Dictionary<string, string>> ReadCsv(string path)
    {
        var rows = new List<Dictionary<string, string>>();
        if (!File.Exists(path)) return rows;
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).Select(Split).ToArray();
        if (lines.Length == 0) return rows;
        var header = lines[0];
        foreach (var cells in lines.Skip(1))
        {
            var row = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < header.Length && i < cells.Length; i++) row[header[i]] = cells[i];
            rows.Add(row);
        }
        return rows;
    }

    static string[] Split(string line)
    {
        var cells = new List<string>();
        var cell = new StringBuilder();
        bool quoted = false;
        foreach (char ch in line)
        {
            if (ch == '"') quoted = !quoted;
            else if (ch == ',' && !quoted) { cells.Add(cell.ToString()); cell.Clear(); }
            else cell.Append(ch);
        }
        cells.Add(cell.ToString());
        return [.. cells];
    }

    /// <summary>Grouped horizontal bars per case, log-scale ns axis.</summary>
    static string Chart(List<(string Case, double?[] Values)> groups)
    {
        string[] series = ["interpreter", "JIT", "hand-written C#", "Linux kernel (test_run)"];
        string[] colors = ["#c44e52", "#4c72b0", "#55a868", "#8172b2"];
        const int left = 130, width = 620, bar = 13, gap = 14, top = 50;
        int height = top + groups.Count * (series.Length * bar + gap) + 50;
        double lo = 1, hi = 10_000;
        foreach (var v in groups.SelectMany(g => g.Values).Where(v => v != null)) hi = Math.Max(hi, Math.Pow(10, Math.Ceiling(Math.Log10(v!.Value))));
        double X(double ns) => left + width * (Math.Log10(Math.Max(ns, lo)) - Math.Log10(lo)) / (Math.Log10(hi) - Math.Log10(lo));
        var s = new StringBuilder();
        s.AppendLine(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{left + width + 120}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">");
        s.AppendLine("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        s.AppendLine(Inv, $"<text x=\"{left}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">BpfJit SK_LOOKUP suite: ns per run (log scale, lower is better)</text>");
        for (int i = 0; i < series.Length; i++)
        {
            int x = left + i * 150;
            s.AppendLine(Inv, $"<rect x=\"{x}\" y=\"28\" width=\"10\" height=\"10\" fill=\"{colors[i]}\"/><text x=\"{x + 14}\" y=\"37\">{series[i]}</text>");
        }
        for (double t = lo; t <= hi; t *= 10)
        {
            double x = X(t);
            string label = t >= 1e6 ? $"{t / 1e6:0} ms" : t >= 1e3 ? $"{t / 1e3:0} µs" : $"{t:0} ns";
            s.AppendLine(Inv, $"<line x1=\"{x:0.#}\" y1=\"{top - 4}\" x2=\"{x:0.#}\" y2=\"{height - 40}\" stroke=\"#ddd\"/><text x=\"{x:0.#}\" y=\"{height - 26}\" text-anchor=\"middle\">{label}</text>");
        }
        int y = top;
        foreach (var (name, values) in groups)
        {
            s.AppendLine(Inv, $"<text x=\"{left - 8}\" y=\"{y + series.Length * bar / 2 + 4}\" text-anchor=\"end\" font-weight=\"bold\">{name}</text>");
            for (int i = 0; i < series.Length; i++, y += bar)
            {
                if (values[i] is not { } v) continue;
                double x = X(v);
                s.AppendLine(Inv, $"<rect x=\"{left}\" y=\"{y}\" width=\"{x - left:0.#}\" height=\"{bar - 2}\" fill=\"{colors[i]}\"/><text x=\"{x + 4:0.#}\" y=\"{y + bar - 3}\">{Ns(v)}</text>");
            }
            y += gap;
        }
        s.AppendLine("</svg>");
        return s.ToString();
    }
}
