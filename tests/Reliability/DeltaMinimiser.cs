using BpfJit.Frontend;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Shrinks a failing program while a predicate keeps failing (delta debugging over instruction
/// ranges): it removes ever smaller runs of slots, re-targets the jumps, calls and callback
/// references that cross a removed run (a target inside it moves to the first slot after it), and
/// never splits an ld_imm64 pair.
/// </summary>
public static class DeltaMinimiser
{
    /// <summary>The smallest program found for which <paramref name="stillFails"/> holds (at most <paramref name="budget"/> tries).</summary>
    public static Instruction[] Minimise(Instruction[] program, Func<Instruction[], bool> stillFails, int budget = 2000)
    {
        var current = program;
        for (int chunk = Math.Max(1, current.Length / 2); chunk >= 1 && budget > 0; chunk /= 2)
        {
            bool shrunk = true;
            while (shrunk && budget > 0)
            {
                shrunk = false;
                for (int start = 0; start < current.Length && budget > 0; start += chunk)
                {
                    var candidate = Remove(current, start, Math.Min(start + chunk, current.Length));
                    if (candidate == null || candidate.Length == current.Length) continue;
                    budget--;
                    bool fails;
                    try { fails = stillFails(candidate); }
                    catch (BpfException) { fails = false; }
                    if (!fails) continue;
                    current = candidate;
                    shrunk = true;
                }
            }
        }
        return current;
    }

    /// <summary><paramref name="program"/> without slots [<paramref name="from"/>, <paramref name="to"/>), or null when that would split an ld_imm64.</summary>
    public static Instruction[]? Remove(Instruction[] program, int from, int to)
    {
        // The second slot of an ld_imm64 has opcode 0, so a slot after an ld_imm64 opcode is its second half.
        if (from > 0 && program[from - 1].IsLdImm64) return null;
        if (to < program.Length && program[to - 1].IsLdImm64) return null;
        int removed = to - from;
        int Position(int slot) => slot < from ? slot : slot >= to ? slot - removed : from;
        var result = new List<Instruction>(program.Length - removed);
        for (int i = 0; i < program.Length; i++)
        {
            if (i >= from && i < to) continue;
            var ins = program[i];
            int self = Position(i);
            if (ins.IsLdImm64)
            {
                if (ins.Src == (byte)Ld64Source.Func)
                    ins = ins with { Imm = Position(i + 1 + ins.Imm) - self - 1 };
                result.Add(ins);
                result.Add(program[++i]);
                continue;
            }
            if (ins.Opcode == Op.Ja32)
                ins = ins with { Imm = Position(i + 1 + ins.Imm) - self - 1 };
            else if (ins.IsBranch)
                ins = ins with { Offset = (short)(Position(i + 1 + ins.Offset) - self - 1) };
            else if (ins.Class == InstructionClass.Jmp && ins.Opcode == Op.Call && ins.Src == 1)
                ins = ins with { Imm = Position(i + 1 + ins.Imm) - self - 1 };
            result.Add(ins);
        }
        return [.. result];
    }
}
