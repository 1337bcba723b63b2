using BpfJit.Frontend;
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

    /// <summary>
    /// Verifies like <see cref="Verify"/> and returns what the verifier proved, by slot, for the engine
    /// (<see cref="IBpfEngine.Prepare(Instruction[], HelperTable, ProgramFacts?)"/>); null when this verifier
    /// proves nothing an engine can use (the default).
    /// </summary>
    ProgramFacts? VerifyWithFacts(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers)
    {
        Verify(program, maps, helpers);
        return null;
    }
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

    /// <summary>
    /// Verifies with the installed verifier, or throws when none is installed; returns the facts it
    /// proved (null when it gives none), for <see cref="SkLookupProgram.Load(string, Instruction[], IBpfEngine, HelperTable?, ProgramFacts?)"/>.
    /// </summary>
    public static ProgramFacts? Verify(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers)
    {
        ArgumentNullException.ThrowIfNull(program);
        var verifier = Verifier ?? throw new Frontend.BpfException(
            $"program {program.Name}: no verifier is installed (set ProgramVerification.Verifier = new BpfJit.Verifier.SkLookupProgramVerifier()); programs are not run unverified");
        return verifier.VerifyWithFacts(program, maps, helpers);
    }
}
