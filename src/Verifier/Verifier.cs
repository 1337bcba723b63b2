using System.Runtime.CompilerServices;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.ProgramTypes;

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
        if (ProgramTypeRegistry.Find(options.ProgramType) == null)
            throw new ArgumentException($"program type {options.ProgramType} is not supported", nameof(options));
        // One run, as the kernel's: precision-aware pruning, and loops (callbacks, iterators, may_goto) that
        // converge by widening the scalars no path has needed exactly so far.
        return new Checker(program, options).Run();
    }

    /// <summary>Verifies and throws <see cref="BpfVerifierException"/> (carrying the log) when rejected.</summary>
    public static VerifierResult VerifyOrThrow(IReadOnlyList<Instruction> program, VerifierOptions options) =>
        Verify(program, options).ThrowIfRejected();
}
