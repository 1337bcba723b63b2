using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Fuzz;
using SharpFuzz;

// BpfJit.Fuzz: input-fuzzing harnesses (docs/reliability.md).
//   BpfJit.Fuzz TARGET                        one input per process iteration from AFL (afl-fuzz ... -- dotnet BpfJit.Fuzz.dll TARGET)
//   BpfJit.Fuzz TARGET --mutate N [--seed S]   N in-process mutated inputs over the corpus (TARGET may be 'all')
//   BpfJit.Fuzz seed-corpus                    regenerates tests/fuzz-corpus from the repository's programs and scenarios
const string Usage = "usage: BpfJit.Fuzz TARGET | TARGET --mutate N [--seed S] [--crashes DIR] | seed-corpus   (targets: all, elf, decode, verify, asm, conformance, scenario)";

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    foreach (var h in Harnesses.All) Console.WriteLine($"  {h.Name,-12} {h.Description} (corpus tests/fuzz-corpus/{h.CorpusFolder})");
    return args.Length == 0 ? 2 : 0;
}
if (args[0] == "seed-corpus") return SeedCorpus();
if (args[0] != "all" && !Harnesses.All.Any(h => h.Name == args[0]))
{
    Console.Error.WriteLine($"BpfJit.Fuzz: unknown target '{args[0]}'; {Usage}");
    return 2;
}
{
    int mutate = Option("--mutate", -1), seed = Option("--seed", 1);
    if (mutate < 0)
    {
        // AFL: SharpFuzz feeds each input; a typed exception is a normal outcome, anything else a crash.
        // The harness is looked up inside the callback: instrumented code must not run before Run has
        // set up AFL's coverage map.
        Harness? harness = null;
        string target = args[0];
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            harness ??= Harnesses.Get(target);
            try { harness.Run(buffer.ToArray()); }
            catch (Exception e) when (Harnesses.IsExpected(e)) { }
        });
        return 0;
    }
    string crashDir = OptionText("--crashes", "fuzz-crashes");
    int total = 0;
    foreach (var harness in args[0] == "all" ? Harnesses.All : [Harnesses.Get(args[0])])
    {
        var report = MutationReport.Run(harness, mutate, seed);
        Console.WriteLine(report);
        foreach (var (input, error) in report.CrashInputs.Take(20))
        {
            Directory.CreateDirectory(crashDir);
            string path = Path.Combine(crashDir, $"{harness.Name}-{Convert.ToHexString(System.Security.Cryptography.SHA1.HashData(input))[..12]}.bin");
            File.WriteAllBytes(path, input);
            Console.WriteLine($"  crash {error.GetType().Name}: {error.Message.Split('\n')[0]} -> {path}");
        }
        total += report.Crashes;
    }
    return total == 0 ? 0 : 1;
}

int Option(string name, int fallback) => int.TryParse(OptionText(name, ""), out int v) ? v : fallback;

string OptionText(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

// The derived seed corpora: the C corpus objects as they are, their programs' instruction bytes,
// the example .data files and their asm sections, and every scenario file.
static int SeedCorpus()
{
    string root = Harnesses.RepoRoot, corpus = Path.Combine(root, "tests", "fuzz-corpus");
    string Dir(string name) => Directory.CreateDirectory(Path.Combine(corpus, name)).FullName;
    string elf = Dir("elf"), decode = Dir("decode"), asm = Dir("asm"), conformance = Dir("conformance"), scenario = Dir("scenario");
    int files = 0;
    foreach (var o in Directory.GetFiles(Path.Combine(root, "tests", "programs"), "*.o").Concat(Directory.GetFiles(Path.Combine(root, "tests", "Loader", "objects"), "*.o")))
    {
        File.Copy(o, Path.Combine(elf, Path.GetFileName(o)), overwrite: true);
        files++;
        try
        {
            foreach (var p in ObjectFile.Load(o).Programs)
            {
                File.WriteAllBytes(Path.Combine(decode, $"{Path.GetFileNameWithoutExtension(o)}.{p.Name}.bin"), Encoder.Encode(p.Instructions));
                files++;
            }
        }
        catch (BpfException) { }
    }
    foreach (var d in Directory.GetFiles(Path.Combine(root, "examples", "asm"), "*.data"))
    {
        File.Copy(d, Path.Combine(conformance, Path.GetFileName(d)), overwrite: true);
        if (Harnesses.AsmSection(File.ReadAllText(d)) is { } text) File.WriteAllText(Path.Combine(asm, Path.GetFileNameWithoutExtension(d) + ".s"), text);
        files += 2;
    }
    foreach (var j in Directory.GetFiles(Path.Combine(root, "tests", "scenarios"), "*.json"))
    {
        File.Copy(j, Path.Combine(scenario, Path.GetFileName(j)), overwrite: true);
        files++;
    }
    Console.WriteLine($"{files} corpus files written under {Path.GetRelativePath(Directory.GetCurrentDirectory(), corpus)}");
    return 0;
}
