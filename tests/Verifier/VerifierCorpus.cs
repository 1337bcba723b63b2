using System.Globalization;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// One corpus program: assembly, maps, and the expected verdict with a message substring.
/// File format (tests/Verifier/cases/*.txt), one case after another:
/// <code>
/// ## name: short description
/// ## maps: name:TYPE:key:value:entries[:flags][:ro][:lock=OFF][:inner=NAME], ...   (lock=OFF: a BTF value type with a struct bpf_spin_lock at OFF;
///           inner=NAME: a map-in-map whose template (inner_map_fd) is the map NAME listed before it)
/// ## expect: accept | reject MESSAGE SUBSTRING
/// ## kernel: accept | reject    (only for a deliberate difference listed in docs/verifier.md)
/// </code>
/// A file names the kernel build its kernel answers were last checked on in a line before its first case,
/// <c>## checked-on: RELEASE</c> (<c>uname -r</c>); a case may name its own after its name line. A live kernel
/// of another build may answer differently without failing the test (<see cref="Support.KernelOracle"/>).
/// A file's cases are SK_LOOKUP programs unless a line before its first case (or after a case's name line) names
/// another type by its libbpf section name, <c>## section: sk_reuseport</c> (<c>sk_reuseport/migrate</c>): the program
/// type and the expected attach type both the verifier and the kernel are given.
/// <code>
/// assembly (bpf_conformance syntax); ldmap %rN, NAME and ldmapval %rN, NAME, OFF load map references,
/// ldfunc %rN, LABEL loads a callback's address (ld_imm64 src 4, BPF_PSEUDO_FUNC);
/// kcall NAME calls the kernel function NAME (call src 2, imm its index in <see cref="KernelFunctions"/>)
/// </code>
/// </summary>
public sealed record CorpusCase(string File, string Name, string Source, IReadOnlyList<MapInfo> Maps, bool Accept, string? Message, bool? KernelAccept)
{
    /// <summary>The kernel build (<c>uname -r</c>) the kernel's answer for this case was last checked on (null: never recorded).</summary>
    public string? CheckedOn { get; init; }

    /// <summary>The libbpf section name that gives the case's program type and expected attach type (default <c>sk_lookup</c>).</summary>
    public string Section { get; init; } = "sk_lookup";

    /// <summary>The program type <see cref="Section"/> names.</summary>
    public ProgramType Type => SectionNames.Classify(Section).Type;

    /// <summary>The expected attach type <see cref="Section"/> names.</summary>
    public AttachType Attach => SectionNames.Classify(Section).Attach ?? AttachType.SkLookup;

    /// <inheritdoc />
    public override string ToString() => $"{File}: {Name}";

    const uint MapMagic = 0x4d415000, ValueMagic = 0x56414c00;
    /// <summary>The kernel functions the program's <c>kcall</c> lines name, in first-use order (a kfunc call's immediate indexes it).</summary>
    public IReadOnlyList<string> KernelFunctions =>
        Source.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("kcall ", StringComparison.Ordinal))
            .Select(l => l[6..].Trim()).Distinct().ToList();

    /// <summary>The helper id a <c>kcall</c> is assembled with before it becomes a kfunc call (plus the name's index).</summary>
    const int KcallMarker = 0x4b430000;

    /// <summary>The immediate of the marker slot that follows the <c>call local</c> an <c>ldfunc</c> is assembled as.</summary>
    const int FuncMarker = 0x46554e43;

    /// <summary>A kernel map type name (SOCKMAP, PERCPU_ARRAY...) as the loader's <see cref="MapType"/>.</summary>
    static MapType ParseType(string name) =>
        Enum.TryParse<MapType>(name.Replace("_", "", StringComparison.Ordinal), ignoreCase: true, out var t) && Enum.IsDefined(t) ? t
            : throw new FormatException($"unknown map type '{name}'");

    /// <summary>Assembles the program, turning map pseudo-instructions into ld_imm64 with src 5/6.</summary>
    public Instruction[] Assemble()
    {
        var lines = new List<string>();
        foreach (var raw in Source.Split('\n'))
        {
            string line = raw;
            string t = raw.Trim();
            if (t.StartsWith("ldmapval ", StringComparison.Ordinal) || t.StartsWith("ldmap ", StringComparison.Ordinal))
            {
                bool value = t.StartsWith("ldmapval", StringComparison.Ordinal);
                var ops = t[(value ? 8 : 5)..].Split(',').Select(s => s.Trim()).ToArray();
                int idx = Maps.ToList().FindIndex(m => m.Name == ops[1]);
                if (idx < 0) throw new FormatException($"{this}: unknown map {ops[1]}");
                int off = value ? int.Parse(ops[2], CultureInfo.InvariantCulture) : 0;
                ulong imm = value ? ((ulong)(ValueMagic | (uint)idx) << 32) | (uint)off : ((ulong)(MapMagic | (uint)idx) << 32);
                line = $"lddw {ops[0]}, 0x{imm:x}";
            }
            else if (t.StartsWith("kcall ", StringComparison.Ordinal))
            {
                int k = KernelFunctions.ToList().IndexOf(t[6..].Trim());
                line = $"call 0x{KcallMarker + k:x}";
            }
            else if (t.StartsWith("ldfunc ", StringComparison.Ordinal))
            {
                // Two slots like the ld_imm64 it becomes: a call whose relative target is the label, then a marker.
                var ops = t[7..].Split(',').Select(s => s.Trim()).ToArray();
                lines.Add($"call local {ops[1]}");
                line = $"mov32 {ops[0]}, 0x{FuncMarker:x}";
            }
            lines.Add(line);
        }
        var slots = Assembler.Assemble(string.Join("\n", lines));
        for (int i = 0; i < slots.Length; i++)
            if (slots[i].IsCall && slots[i].Src == 0 && (slots[i].Imm & ~0xffff) == KcallMarker)
                slots[i] = slots[i] with { Src = (byte)CallKind.Kfunc, Imm = slots[i].Imm - KcallMarker };
        for (int i = 0; i + 1 < slots.Length; i++)
        {
            if (slots[i].IsCall && slots[i].Src == 1 && slots[i + 1].Imm == FuncMarker && slots[i + 1].Class == InstructionClass.Alu)
            {
                var first = Ins.LdImm64(slots[i + 1].Dst, 0);
                slots[i] = first[0] with { Src = 4, Imm = slots[i].Imm };
                slots[i + 1] = first[1];
                i++;
                continue;
            }
            if (!slots[i].IsLdImm64) continue;
            uint hi = (uint)slots[i + 1].Imm;
            if ((hi & 0xffffff00) == MapMagic)
            {
                slots[i] = slots[i] with { Src = 5, Imm = (int)(hi & 0xff) };
                slots[i + 1] = slots[i + 1] with { Imm = 0 };
            }
            else if ((hi & 0xffffff00) == ValueMagic)
            {
                int off = slots[i].Imm;
                slots[i] = slots[i] with { Src = 6, Imm = (int)(hi & 0xff) };
                slots[i + 1] = slots[i + 1] with { Imm = off };
            }
            i++;
        }
        return slots;
    }

    /// <summary>Every case of every file in the cases folder.</summary>
    public static IEnumerable<CorpusCase> All()
    {
        string dir = Path.Combine(Support.Paths.RepoRoot, "tests", "Verifier", "cases");
        foreach (var file in Directory.GetFiles(dir, "*.txt").OrderBy(f => f, StringComparer.Ordinal))
            foreach (var c in Parse(Path.GetFileName(file), System.IO.File.ReadAllText(file)))
                yield return c;
    }

    /// <summary>Parses one corpus file.</summary>
    public static IEnumerable<CorpusCase> Parse(string file, string text)
    {
        string? name = null;
        var maps = new List<MapInfo>();
        bool accept = true;
        string? message = null;
        bool? kernel = null;
        string? fileRelease = null, release = null;
        string fileSection = "sk_lookup", section = fileSection;
        var src = new List<string>();
        foreach (var raw in text.Split('\n').Append("## name: <end>"))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("## name:", StringComparison.Ordinal))
            {
                if (name != null) yield return new CorpusCase(file, name, string.Join("\n", src), maps, accept, message, kernel) { CheckedOn = release, Section = section };
                name = line[8..].Trim();
                release = fileRelease;
                section = fileSection;
                maps = [];
                accept = true;
                message = null;
                kernel = null;
                src = [];
            }
            else if (line.StartsWith("## checked-on:", StringComparison.Ordinal))
            {
                if (name == null) fileRelease = line[14..].Trim();
                release = line[14..].Trim();
            }
            else if (line.StartsWith("## section:", StringComparison.Ordinal))
            {
                string s = line[11..].Trim();
                if (SectionNames.Classify(s).Type == ProgramType.Unspec) throw new FormatException($"{file}: unknown section name '{s}'");
                if (name == null) fileSection = s;
                section = s;
            }
            else if (line.StartsWith("## maps:", StringComparison.Ordinal))
            {
                foreach (var spec in line[8..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    var p = spec.Split(':');
                    uint flags = 0;
                    bool ro = false;
                    int lockOff = -1;
                    MapInfo? inner = null;
                    foreach (var extra in p.Skip(5))
                    {
                        if (extra == "ro") ro = true;
                        else if (extra.StartsWith("inner=", StringComparison.Ordinal))
                            inner = maps.Find(m => m.Name == extra[6..]) ?? throw new FormatException($"{file}: inner map '{extra[6..]}' must be listed before it");
                        else if (extra.StartsWith("lock=", StringComparison.Ordinal)) lockOff = int.Parse(extra[5..], CultureInfo.InvariantCulture);
                        else if (extra.Length > 0) flags = (uint)Assembler.ParseImm(extra);
                    }
                    maps.Add(new MapInfo(p[0], ParseType(p[1]), int.Parse(p[2], CultureInfo.InvariantCulture), int.Parse(p[3], CultureInfo.InvariantCulture),
                        int.Parse(p[4], CultureInfo.InvariantCulture), flags, ro, SpinLockOffset: lockOff, HasBtf: lockOff >= 0, InnerMap: inner));
                }
            }
            else if (line.StartsWith("## expect:", StringComparison.Ordinal))
            {
                string e = line[10..].Trim();
                accept = e.StartsWith("accept", StringComparison.Ordinal);
                message = accept ? null : e[6..].Trim();
            }
            else if (line.StartsWith("## kernel:", StringComparison.Ordinal))
            {
                kernel = line[10..].Trim().StartsWith("accept", StringComparison.Ordinal);
            }
            else if (name != null) src.Add(line);
        }
    }
}
