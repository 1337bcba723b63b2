using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime.SkLookup;

/// <summary>
/// Checks a program from an object before the runtime binds and runs it. The static verifier lives in
/// a higher layer (BpfJit.Verifier references this assembly), so the runtime asks through this
/// interface; <c>BpfJit.Verifier.SkLookupProgramVerifier</c> implements it.
/// </summary>
public interface IProgramVerifier
{
    /// <summary>
    /// Verifies <paramref name="program"/> (map references still symbolic: ld_imm64 src 5/6 index
    /// <paramref name="maps"/>) against <paramref name="helpers"/>; throws a <see cref="Frontend.BpfException"/>
    /// carrying the verifier's log when it is rejected.
    /// </summary>
    void Verify(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers);
}

/// <summary>The verifier the runtime uses for programs loaded from objects.</summary>
public static class ProgramVerification
{
    /// <summary>
    /// The installed verifier. Object programs are never run unverified: while this is null, loading
    /// one fails with a <see cref="Frontend.BpfException"/> that says so. The <c>bpfjit</c> tool installs
    /// <c>BpfJit.Verifier.SkLookupProgramVerifier</c>; a host does the same once at start-up.
    /// </summary>
    public static IProgramVerifier? Verifier { get; set; }

    /// <summary>Verifies with the installed verifier, or throws when none is installed.</summary>
    public static void Verify(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers)
    {
        ArgumentNullException.ThrowIfNull(program);
        var verifier = Verifier ?? throw new Frontend.BpfException(
            $"program {program.Name}: no verifier is installed (set ProgramVerification.Verifier = new BpfJit.Verifier.SkLookupProgramVerifier()); programs are not run unverified");
        verifier.Verify(program, maps, helpers);
    }
}
