using System.Diagnostics;
using BpfJit.KernelSelftests;

// usage: BpfJit.KernelSelftests OBJDIR [--failures FILE] [--tsv FILE]
//        BpfJit.KernelSelftests --show OBJECT.o PROGRAM   (both logs of one program)
// Compares every *.o of OBJDIR (run.sh compiles them); FILE lists "name<TAB>reason" of the sources
// that did not compile. Exit 0 when nothing is unsound, 1 otherwise, 2 on bad usage.
if (args.Length == 3 && args[0] == "--show")
{
    var r = Comparison.CompareObject(args[1]).FirstOrDefault(c => c.Program == args[2]);
    if (r == null) { Console.Error.WriteLine($"no program {args[2]} in {args[1]}"); return 2; }
    Console.WriteLine($"{r.Outcome}: kernel {r.Kernel.Outcome}, BpfJit {(r.BpfJit.Loaded ? r.BpfJit.Accepted ? "accepts" : "rejects" : "refused: " + r.BpfJit.Error)}");
    Console.WriteLine("--- kernel log\n" + (r.Kernel.Log.Length > 0 ? r.Kernel.Log : r.Kernel.Messages));
    Console.WriteLine("--- BpfJit log\n" + r.BpfJit.Log);
    return 0;
}
if (args.Length < 1 || !Directory.Exists(args[0]))
{
    Console.Error.WriteLine("usage: BpfJit.KernelSelftests OBJDIR [--failures FILE] [--tsv FILE]");
    return 2;
}
string? Option(string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;

if (!Libbpf.Available)
{
    Console.Error.WriteLine("libbpf unavailable: " + Libbpf.UnavailableReason);
    return 2;
}
var clock = Stopwatch.StartNew();
var results = new List<ProgramComparison>();
foreach (var obj in Directory.GetFiles(args[0], "*.o").Order(StringComparer.Ordinal))
{
    var one = Comparison.CompareObject(obj);
    results.AddRange(one);
    Console.Error.WriteLine($"{Path.GetFileName(obj)}: {one.Count} programs, {one.Count(r => r.Outcome == Outcome.Agree)} agree ({clock.Elapsed.TotalSeconds:F0} s)");
}
var failures = Option("--failures") is { } f && File.Exists(f)
    ? File.ReadAllLines(f).Where(l => l.Length > 0).Select(l => l.Split('\t', 2)).Select(p => (p[0], p.Length > 1 ? p[1] : "")).ToList()
    : [];
Report.Write(Console.Out, results, failures);
Console.WriteLine($"comparison time: {clock.Elapsed.TotalSeconds:F0} s");
if (Option("--tsv") is { } tsv)
{
    using var w = new StreamWriter(tsv);
    Report.WriteTsv(w, results);
}
return results.Any(r => r.Outcome == Outcome.Unsound) ? 1 : 0;
