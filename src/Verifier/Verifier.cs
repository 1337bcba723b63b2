using System.Runtime.CompilerServices;
using BpfJit.Frontend;

[assembly: InternalsVisibleTo("BpfJit.Tests")]

namespace BpfJit.Verifier;

/// <summary>
/// The static verifier: proves a program safe to run as raw-pointer IL, the way Linux's
/// <c>kernel/bpf/verifier.c</c> does for a privileged loader, and tells the JIT what it proved.
/// </summary>
public static class Verifier
{
    /// <summary>Verifies <paramref name="program"/> (instruction slots; ld_imm64 takes two).</summary>
    public static VerifierResult Verify(IReadOnlyList<Instruction> program, VerifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(options);
        if (options.ProgramType != ProgramType.SkLookup)
            throw new ArgumentException($"program type {options.ProgramType} is not supported", nameof(options));
        // Precision-aware pruning first. Callback loops run with the kernel's widening of changed
        // imprecise scalars, which converges on counters kept in the callback context; where that
        // loses a value the program needs, the callbacks are explored again with every scalar
        // compared exactly, widened and then unrolled. Every run is sound, so any acceptance is safe.
        var first = new Checker(program, options, widenCallbacks: true, precision: true);
        var result = first.Run();
        if (result.Accepted || !first.HasCallbacks) return result;
        var exact = new Checker(program, options, widenCallbacks: true, precision: false);
        var exactResult = exact.Run();
        if (exactResult.Accepted || !exact.WidenedScalars) return exactResult.Accepted ? exactResult : result;
        var unrolled = new Checker(program, options, widenCallbacks: false, precision: false).Run();
        return unrolled.Accepted ? unrolled : result;
    }

    /// <summary>Verifies and throws <see cref="BpfVerifierException"/> (carrying the log) when rejected.</summary>
    public static VerifierResult VerifyOrThrow(IReadOnlyList<Instruction> program, VerifierOptions options) =>
        Verify(program, options).ThrowIfRejected();
}
