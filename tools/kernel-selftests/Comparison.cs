using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Verifier;

namespace BpfJit.KernelSelftests;

/// <summary>How BpfJit's verdict on one program relates to the kernel's.</summary>
public enum Outcome
{
    /// <summary>Both accept or both reject.</summary>
    Agree,
    /// <summary>BpfJit accepts a program the kernel rejects.</summary>
    Unsound,
    /// <summary>The kernel accepts a program BpfJit rejects.</summary>
    OverStrict,
    /// <summary>BpfJit's object loader refused the program (or its whole object): no verifier verdict.</summary>
    NotLoadable,
    /// <summary>libbpf could not bring the program to BPF_PROG_LOAD: no kernel verdict.</summary>
    KernelNotLoaded,
    /// <summary>BpfJit's verifier threw instead of giving a verdict (a bug).</summary>
    VerifierCrash,
}

/// <summary>BpfJit's answer for one program: accepted or not, the error, the log; or why there is none.</summary>
public sealed record BpfJitVerdict(bool Loaded, bool Accepted, string Error, string Log)
{
    /// <summary>The loader refused the program; <paramref name="reason"/> says why.</summary>
    public static BpfJitVerdict Refused(string reason) => new(false, false, reason, "");
}

/// <summary>One program of one object: both verdicts and how they compare.</summary>
public sealed record ProgramComparison(string File, string Program, string Section, KernelVerdict Kernel, BpfJitVerdict BpfJit, Outcome Outcome);

/// <summary>
/// The comparison core: every program libbpf finds in an object is loaded alone into the live kernel
/// (<see cref="Libbpf.Load(string, string, int, int)"/>) as the type BpfJit's verifier checks it as (its own type when BpfJit
/// supports it, SK_REUSEPORT; SK_LOOKUP otherwise), and verified by BpfJit's verifier from BpfJit's own object
/// loader, as <c>bpfjit verify</c> does; the two verdicts are classified.
/// </summary>
public static class Comparison
{
    static readonly HelperTable s_helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
    static readonly HelperTable s_reuseportHelpers = BpfJit.Runtime.SkReuseport.SkReuseportHelpers.CreateTable();

    /// <summary>Compares every program of the object at <paramref name="path"/>.</summary>
    public static IReadOnlyList<ProgramComparison> CompareObject(string path)
    {
        string file = Path.GetFileName(path);
        var (programs, openError) = Libbpf.ListPrograms(path);
        CollectionSpec? collection = null;
        string? loaderError = null;
        try { collection = ObjectFile.Load(path); }
        catch (BpfException e) { loaderError = e.Message; }

        if (openError != null)
        {
            // Without libbpf's list, BpfJit's list names the programs; none has a kernel verdict.
            var kernel = new KernelVerdict(KernelOutcome.NotLoaded, 0, "", openError);
            return (collection?.Programs.Select(p => (p.Name, p.SectionName)) ?? [])
                .Select(p => new ProgramComparison(file, p.Name, p.SectionName, kernel, BpfJitVerdict.Refused("not compared"), Outcome.KernelNotLoaded))
                .ToList();
        }
        var results = new List<ProgramComparison>();
        foreach (var (name, section) in programs)
        {
            // Both sides check the program as the same type: BpfJit verifies a program of a type it supports as that
            // type (ObjectVerification), any other as SK_LOOKUP; the kernel is asked for the same.
            var spec = collection?.Programs.FirstOrDefault(p => p.Name == name);
            var kernel = spec is { Type: ProgramType.SkReuseport }
                ? Libbpf.Load(path, name, (int)ProgramType.SkReuseport, (int)(spec.AttachType ?? AttachType.SkReuseportSelect))
                : Libbpf.Load(path, name);
            var bpfjit = VerifyWithBpfJit(collection, loaderError, name);
            results.Add(new ProgramComparison(file, name, section, kernel, bpfjit, Classify(kernel, bpfjit)));
        }
        return results;
    }

    /// <summary>The classification of a pair of verdicts; a missing kernel verdict wins over a missing BpfJit one.</summary>
    public static Outcome Classify(KernelVerdict kernel, BpfJitVerdict bpfjit)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(bpfjit);
        if (kernel.Outcome == KernelOutcome.NotLoaded) return Outcome.KernelNotLoaded;
        if (!bpfjit.Loaded) return bpfjit.Error.StartsWith(CrashPrefix, StringComparison.Ordinal) ? Outcome.VerifierCrash : Outcome.NotLoadable;
        bool kernelAccepts = kernel.Outcome == KernelOutcome.Accepted;
        if (kernelAccepts == bpfjit.Accepted) return Outcome.Agree;
        return bpfjit.Accepted ? Outcome.Unsound : Outcome.OverStrict;
    }

    const string CrashPrefix = "verifier threw ";

    static BpfJitVerdict VerifyWithBpfJit(CollectionSpec? collection, string? loaderError, string name)
    {
        if (collection == null) return BpfJitVerdict.Refused(loaderError ?? "object not loaded");
        var program = collection.Programs.FirstOrDefault(p => p.Name == name);
        if (program == null)
            return BpfJitVerdict.Refused($"BpfJit's loader has no program '{name}' (programs: {string.Join(", ", collection.Programs.Select(p => p.Name))})");
        try
        {
            var helpers = program.Type == ProgramType.SkReuseport ? s_reuseportHelpers : s_helpers;
            var result = ObjectVerification.Verify(collection, program, helpers, logLevel: 1);
            return new BpfJitVerdict(true, result.Accepted, result.Error ?? "", result.Log);
        }
        catch (BpfException e)
        {
            // A refusal the verifier reports by exception (an unsupported construct) is a loader-level refusal.
            return BpfJitVerdict.Refused(e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return BpfJitVerdict.Refused(CrashPrefix + e.GetType().Name + ": " + e.Message);
        }
    }
}
