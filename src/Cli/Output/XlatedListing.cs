using System.Globalization;
using System.Text;
using System.Text.Json;
using BpfJit.Cli.Commands;
using BpfJit.Frontend;
using BpfJit.Verifier;

namespace BpfJit.Cli.Output;

/// <summary>
/// <c>dump --xlated</c>: the program as the engine compiles it, as <c>bpftool prog dump xlated</c> shows the kernel's
/// rewritten program: the instructions after binding and the ctx rewrites, map references by name, dead code
/// marked, and per instruction what the verifier proved (register types before it, the facts the JIT uses).
/// </summary>
public static class XlatedListing
{
    /// <summary>One instruction of the listing.</summary>
    /// <param name="Slot">The slot index.</param>
    /// <param name="Opcode">The opcode byte.</param>
    /// <param name="Text">The instruction, map references by name.</param>
    /// <param name="Dead">True when no path reaches it (the JIT compiles no code for it).</param>
    /// <param name="Registers">Register types before it, <c>r1=ctx</c>; empty for dead code.</param>
    /// <param name="Notes">The facts the engine uses here (<c>ctx load local_port</c>, <c>map redir_map</c>).</param>
    public sealed record Line(int Slot, byte Opcode, string Text, bool Dead, IReadOnlyList<string> Registers, IReadOnlyList<string> Notes);

    /// <summary>The listing of <paramref name="program"/>, with <paramref name="verification"/>'s register types.</summary>
    public static List<Line> Build(VerifiedObjectProgram program, VerifierResult verification)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(verification);
        var code = program.Code;
        var refs = program.References.ToDictionary(r => r.Slot);
        var lines = new List<Line>();
        for (int i = 0; i < code.Length; i++)
        {
            var ins = code[i];
            var slot = program.Facts[i];
            string text = refs.TryGetValue(i, out var r)
                // bpftool prints the map the kernel put there (map[id:N]); the runtime's maps have names.
                ? $"r{ins.Dst} = {(r.IsValue ? $"map_value[{r.Map.Name}]+{r.Offset}" : $"map[{r.Map.Name}]")} ll"
                : Disassembler.Format(code, i);
            var regs = new List<string>();
            var notes = new List<string>();
            if (slot.Reachable && i < verification.Facts.Count)
            {
                var facts = verification.Facts[i];
                for (int reg = 0; reg <= 10; reg++)
                {
                    var t = facts.RegTypeBefore(reg);
                    if (t == RegType.NotInit) continue;
                    regs.Add($"r{reg}={(t is { } type ? RegTypeNames.Name(type) : "mixed")}");
                }
            }
            if (slot.CtxField != null) notes.Add($"ctx load {slot.CtxField}");
            if (slot.DivisorNonZero) notes.Add("divisor non-zero");
            if (slot.Map != null) notes.Add($"map {slot.Map.Name}");
            if (slot.MemMap != null) notes.Add($"value of {slot.MemMap.Name}");
            if (slot.VariableOffset) notes.Add("variable offset");
            lines.Add(new Line(i, ins.Opcode, text, !slot.Reachable, regs, notes));
            if (ins.IsLdImm64) i++;
        }
        return lines;
    }

    /// <summary>Writes the listing as text: <c>  12: (85) call bpf_sk_assign#124  ; r1=ctx r2=sock ; map redir_map</c>.</summary>
    public static void WriteText(string name, IReadOnlyList<Line> lines, int slots, TextWriter o)
    {
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentNullException.ThrowIfNull(o);
        int dead = lines.Count(l => l.Dead);
        o.WriteLine($"; {name}: {slots} slots as the engine compiles them (maps bound, ctx loads rewritten); {dead} dead");
        foreach (var l in lines)
        {
            var sb = new StringBuilder();
            sb.Append(l.Slot.ToString(CultureInfo.InvariantCulture).PadLeft(4)).Append(": (").Append(l.Opcode.ToString("x2", CultureInfo.InvariantCulture)).Append(") ").Append(l.Text);
            string facts = l.Dead ? "dead: no path reaches it, not compiled" : string.Join(' ', l.Registers);
            if (!l.Dead && l.Notes.Count > 0) facts += (facts.Length > 0 ? " ; " : "") + string.Join(", ", l.Notes);
            if (facts.Length > 0) sb.Append(new string(' ', Math.Max(1, 44 - sb.Length))).Append("; ").Append(facts);
            o.WriteLine(sb.ToString());
        }
    }

    /// <summary>Writes <c>"xlated": [{"slot", "opcode", "text", "dead", "registers": {"r1": "ctx"}, "notes": [...]}]</c>.</summary>
    public static void WriteJson(IReadOnlyList<Line> lines, Utf8JsonWriter w)
    {
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartArray("xlated");
        foreach (var l in lines)
        {
            w.WriteStartObject();
            w.WriteNumber("slot", l.Slot);
            w.WriteString("opcode", l.Opcode.ToString("x2", CultureInfo.InvariantCulture));
            w.WriteString("text", l.Text);
            w.WriteBoolean("dead", l.Dead);
            w.WriteStartObject("registers");
            foreach (string reg in l.Registers)
            {
                int eq = reg.IndexOf('=', StringComparison.Ordinal);
                w.WriteString(reg[..eq], reg[(eq + 1)..]);
            }
            w.WriteEndObject();
            w.WriteStrings("notes", l.Notes);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
