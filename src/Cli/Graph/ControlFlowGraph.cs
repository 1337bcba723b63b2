using BpfJit.Frontend;

namespace BpfJit.Cli.Graph;

/// <summary>An edge out of a basic block: to the block starting at <paramref name="Target"/>, of kind <c>true</c>, <c>false</c>, <c>jump</c>, <c>next</c>, <c>call</c> or <c>callback</c>.</summary>
public readonly record struct Edge(int Target, string Kind);

/// <summary>Instructions <paramref name="Start"/> to <paramref name="End"/> (exclusive, in slots) with one entry and the edges out of its last instruction.</summary>
public sealed record BasicBlock(int Id, int Start, int End, IReadOnlyList<Edge> Edges);

/// <summary>
/// Splits a program into basic blocks: a block starts at instruction 0, at every jump target, after
/// every jump and exit, and at the entry of every bpf-to-bpf callee or callback (a call continues in
/// its block; its edge to the callee is a <c>call</c> edge).
/// </summary>
public static class ControlFlowGraph
{
    /// <summary>
    /// The blocks of <paramref name="code"/>, in instruction order; edges name target blocks' start slots.
    /// A jump or call outside the program, or into the middle of an ld_imm64, is a <see cref="BpfException"/>.
    /// </summary>
    public static List<BasicBlock> Build(Instruction[] code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var starts = new HashSet<int>(Slots(code));
        var leaders = new SortedSet<int> { 0 };
        void Target(int from, int to)
        {
            if (!starts.Contains(to))
                throw new BpfException($"instruction {from}: target {to} is {(to < 0 || to >= code.Length ? $"outside the program ({code.Length} slots)" : "the second slot of an ld_imm64")}");
            leaders.Add(to);
        }
        foreach (int i in Slots(code))
        {
            var ins = code[i];
            int next = i + (ins.IsLdImm64 ? 2 : 1);
            if (ins.IsBranch)
            {
                Target(i, i + 1 + ins.BranchOffset);
                leaders.Add(next);
            }
            else if (ins.IsExit) leaders.Add(next);
            else if (Callee(code, i) is int callee) Target(i, callee);
        }
        leaders.RemoveWhere(l => l >= code.Length);
        var blockStarts = leaders.ToList();
        var blocks = new List<BasicBlock>();
        for (int b = 0; b < blockStarts.Count; b++)
        {
            int start = blockStarts[b], end = b + 1 < blockStarts.Count ? blockStarts[b + 1] : code.Length;
            int last = Slots(code).Where(s => s >= start && s < end).Last();
            var ins = code[last];
            var edges = new List<Edge>();
            for (int s = start; s < end; s++)
                if (Callee(code, s) is int callee) edges.Add(new Edge(callee, code[s].IsCall ? "call" : "callback"));
            if (ins.IsUnconditionalJump) edges.Add(new Edge(last + 1 + ins.BranchOffset, "jump"));
            else if (ins.IsBranch)
            {
                edges.Add(new Edge(last + 1 + ins.BranchOffset, "true"));
                if (end < code.Length) edges.Add(new Edge(end, "false"));
            }
            else if (!ins.IsExit && end < code.Length) edges.Add(new Edge(end, "next"));
            blocks.Add(new BasicBlock(b, start, end, edges));
        }
        return blocks;
    }

    /// <summary>The slots that start an instruction (the second slot of an ld_imm64 is skipped).</summary>
    public static IEnumerable<int> Slots(Instruction[] code)
    {
        for (int i = 0; i < code.Length; i++)
        {
            yield return i;
            if (code[i].IsLdImm64) i++;
        }
    }

    // A bpf-to-bpf call (call with src 1) or a callback address (ld_imm64 with src 4) names a subprogram.
    static int? Callee(Instruction[] code, int i)
    {
        var ins = code[i];
        if ((ins.IsCall && ins.Src == 1) || (ins.IsLdImm64 && ins.Src == 4)) return i + 1 + ins.Imm;
        return null;
    }
}
