using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Support;

/// <summary>
/// Assembles test programs that refer to maps and callbacks, and runs them on an engine inside a map
/// read-side section. On top of the conformance syntax: <c>ldmap %rN, I</c> (BPF_PSEUDO_MAP_IDX of map I),
/// <c>ldmapvalue %rN, I, OFF</c> (BPF_PSEUDO_MAP_IDX_VALUE), <c>ldmapfd %rN, FD</c> (BPF_PSEUDO_MAP_FD) and
/// <c>ldfunc %rN, label</c> (BPF_PSEUDO_FUNC).
/// </summary>
public static partial class MapPrograms
{
    [GeneratedRegex(@"^\s*(?:[A-Za-z0-9_.]+:\s*)*(ldmap|ldmapvalue|ldmapfd|ldfunc)\s+(%r\d+)\s*,\s*([^,#]+?)\s*(?:,\s*([^#]+?))?\s*(?:#.*)?$")]
    private static partial Regex PseudoLine();

    [GeneratedRegex(@"^\s*([A-Za-z0-9_.]+):")]
    private static partial Regex LabelLine();

    /// <summary>Assembles <paramref name="source"/> with the pseudo ld_imm64 forms.</summary>
    public static Instruction[] Assemble(string source) => Assemble(source, out _);

    /// <summary>Assembles <paramref name="source"/>; <paramref name="lineSlots"/> gives the instruction slot of each source line (where the next instruction starts).</summary>
    public static Instruction[] Assemble(string source, out int[] lineSlots)
    {
        var lines = source.Split('\n');
        lineSlots = new int[lines.Length];
        var labels = new Dictionary<string, int>();
        var patches = new List<(int Slot, string Kind, string A, string B)>();
        int slot = 0;
        for (int n = 0; n < lines.Length; n++)
        {
            lineSlots[n] = slot;
            string text = lines[n];
            int hash = text.IndexOf('#');
            if (hash >= 0) text = text[..hash];
            Match label;
            while ((label = LabelLine().Match(text)).Success)
            {
                labels[label.Groups[1].Value] = slot;
                text = text[label.Length..];
            }
            var pseudo = PseudoLine().Match(lines[n]);
            if (pseudo.Success)
            {
                patches.Add((slot, pseudo.Groups[1].Value, pseudo.Groups[3].Value, pseudo.Groups[4].Value));
                lines[n] = Regex.Replace(lines[n], @"(ldmapvalue|ldmapfd|ldmap|ldfunc)\s+(%r\d+).*$", "lddw $2, 0");
                slot += 2;
                continue;
            }
            text = text.Trim();
            if (text.Length == 0) continue;
            slot += text.StartsWith("lddw", StringComparison.Ordinal) ? 2 : 1;
        }
        var code = Assembler.Assemble(string.Join('\n', lines));
        foreach (var (at, kind, a, b) in patches)
        {
            switch (kind)
            {
                case "ldmap":
                    code[at] = code[at] with { Src = (byte)Ld64Source.MapIdx, Imm = int.Parse(a) };
                    break;
                case "ldmapfd":
                    code[at] = code[at] with { Src = (byte)Ld64Source.MapFd, Imm = int.Parse(a) };
                    break;
                case "ldmapvalue":
                    code[at] = code[at] with { Src = (byte)Ld64Source.MapIdxValue, Imm = int.Parse(a) };
                    code[at + 1] = code[at + 1] with { Imm = int.Parse(b) };
                    break;
                case "ldfunc":
                    code[at] = code[at] with { Src = (byte)Ld64Source.Func, Imm = labels[a] - (at + 1) };
                    break;
            }
        }
        return code;
    }

    /// <summary>Assembles, binds to <paramref name="maps"/> and prepares on <paramref name="engine"/> with the kernel helpers.</summary>
    public static BpfEntry Prepare(string engine, string source, params BpfMap[] maps)
    {
        var bound = ProgramBinder.Bind(Assemble(source), maps);
        return Engines.Get(engine).Prepare(bound.Code, KernelHelpers.Table());
    }

    /// <summary>Runs a prepared program inside a map read-side section, as the hook does.</summary>
    public static ulong Run(BpfEntry entry, ulong r1 = 0, ulong r2 = 0)
    {
        MapEpoch.Enter();
        try { return entry(r1, r2); }
        finally { MapEpoch.Exit(); }
    }

    /// <summary>Prepares and runs once.</summary>
    public static ulong Run(string engine, string source, ulong r1, params BpfMap[] maps) => Run(Prepare(engine, source, maps), r1);

    /// <summary>Little-endian bytes of a u32.</summary>
    public static byte[] U32(uint v) => BitConverter.GetBytes(v);

    /// <summary>Little-endian bytes of a u64.</summary>
    public static byte[] U64(ulong v) => BitConverter.GetBytes(v);
}
