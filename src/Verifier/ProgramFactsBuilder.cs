using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Verifier;

/// <summary>
/// Turns a <see cref="VerifierResult"/> into the runtime's <see cref="ProgramFacts"/>, the form an engine
/// (the JIT) takes them in: per slot reachability, non-zero divisors, context fields, and the live map
/// behind each helper call's map argument.
/// </summary>
public static class ProgramFactsBuilder
{
    /// <summary>
    /// The facts of <paramref name="result"/> for <paramref name="program"/> (the instructions that were
    /// verified). <paramref name="maps"/> are the live maps the program's map references index, in the
    /// order of <see cref="VerifierOptions.Maps"/>; without them no call is map-specialised.
    /// Throws <see cref="BpfVerifierException"/> when the program was rejected. <paramref name="programType"/> is the type
    /// the program was verified as (<see cref="VerifierOptions.ProgramType"/>), whose context the facts' loads read.
    /// </summary>
    public static ProgramFacts ToProgramFacts(this VerifierResult result, Instruction[] program, IReadOnlyList<BpfMap>? maps = null,
        Frontend.Elf.ProgramType programType = Frontend.Elf.ProgramType.SkLookup)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(program);
        result.ThrowIfRejected();
        var slots = new SlotFacts[program.Length];
        for (int i = 0; i < program.Length; i++)
        {
            if (i > 0 && program[i - 1].IsLdImm64)
            {
                // The second slot of an ld_imm64 is part of the first.
                slots[i] = slots[i - 1].Reachable ? SlotFacts.Unknown : SlotFacts.Unreachable;
                continue;
            }
            var f = result.Facts[i];
            slots[i] = new SlotFacts
            {
                Reachable = f.Reachable,
                DivisorNonZero = f.DivisorNonZero,
                CtxField = f.CtxField,
                CtxOffset = f.CtxField != null ? f.CtxOffset : -1,
                Map = maps != null && f.MapArg >= 0 && f.MapArg < maps.Count ? maps[f.MapArg] : null,
                MemMap = maps != null && f.MemMap >= 0 && f.MemMap < maps.Count ? maps[f.MemMap] : null,
                VariableOffset = f.VariableOffset,
                ProbeMem = f.ProbeMem,
            };
        }
        return new ProgramFacts(program, slots, result.MayReadUninitStack, result.StackDepths) { ProgramType = programType };
    }
}
