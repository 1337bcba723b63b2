using BpfJit.Frontend.Btf;

namespace BpfJit.Frontend.Elf;

/// <summary>What an ld_imm64 refers to after loading.</summary>
public enum MapReferenceKind
{
    /// <summary>The map itself (src = BPF_PSEUDO_MAP_IDX, 5).</summary>
    Map,
    /// <summary>An address inside the map's single value (src = BPF_PSEUDO_MAP_IDX_VALUE, 6): global data.</summary>
    Value,
}

/// <summary>
/// An ld_imm64 of a program that refers to a map. The instruction stream holds the same
/// information (src 5 or 6, imm = <see cref="MapIndex"/>, second imm = <see cref="ValueOffset"/>); this
/// record names it.
/// </summary>
/// <param name="InstructionIndex">Slot index of the ld_imm64 in <see cref="ProgramSpec.Instructions"/>.</param>
/// <param name="MapIndex">Index into <see cref="CollectionSpec.Maps"/>.</param>
/// <param name="MapName">The map's name.</param>
/// <param name="Kind">Map or value address.</param>
/// <param name="ValueOffset">For <see cref="MapReferenceKind.Value"/>: byte offset into the value.</param>
/// <param name="SymbolName">The symbol the compiler referred to (a map, a variable, or a section symbol).</param>
public sealed record MapReference(int InstructionIndex, int MapIndex, string MapName, MapReferenceKind Kind, uint ValueOffset, string SymbolName);

/// <summary>A function placed in a linked program: the program's own code or an appended subprogram.</summary>
/// <param name="Name">Function symbol name.</param>
/// <param name="SectionName">The ELF section it came from.</param>
/// <param name="InstructionIndex">First slot in <see cref="ProgramSpec.Instructions"/>.</param>
/// <param name="Length">Number of slots.</param>
/// <param name="SectionOffset">First slot inside its ELF section.</param>
public sealed record FunctionRange(string Name, string SectionName, int InstructionIndex, int Length, int SectionOffset);

/// <summary>
/// A program as found in an object file: its instructions with subprograms linked in and map
/// references rewritten to indexes (see docs/loader.md), plus its type and debug information.
/// Nothing is verified or compiled.
/// </summary>
public sealed class ProgramSpec
{
    /// <summary>Creates a program spec.</summary>
    public ProgramSpec(string name, string sectionName, ProgramType type, AttachType? attachType, Instruction[] instructions)
    {
        Name = name;
        SectionName = sectionName;
        Type = type;
        AttachType = attachType;
        Instructions = instructions;
    }

    /// <summary>The function symbol name.</summary>
    public string Name { get; }

    /// <summary>The ELF section name (<c>sk_lookup</c>, <c>sk_lookup/dispatcher</c>, <c>xdp</c>, ...).</summary>
    public string SectionName { get; }

    /// <summary>
    /// The program type derived from the section name; <see cref="ProgramType.Unspec"/> when the name
    /// was not recognised. Settable, so a host can declare the type of a program whose section name is
    /// not recognised (see <see cref="SetType"/>).
    /// </summary>
    public ProgramType Type { get; set; }

    /// <summary>The expected attach type, when the section name implies one.</summary>
    public AttachType? AttachType { get; set; }

    /// <summary>
    /// True when BpfJit supports this program's type with its expected attach type: SK_LOOKUP (BPF_SK_LOOKUP) and
    /// SK_REUSEPORT (BPF_SK_REUSEPORT_SELECT or _SELECT_OR_MIGRATE), the types the runtime declares in
    /// <c>BpfJit.Runtime.ProgramTypes.ProgramTypeRegistry</c>. A host that runs one type checks <see cref="Type"/> too.
    /// </summary>
    public bool IsSupported => Type switch
    {
        ProgramType.SkLookup => AttachType is null or Elf.AttachType.SkLookup,
        ProgramType.SkReuseport => AttachType is null or Elf.AttachType.SkReuseportSelect or Elf.AttachType.SkReuseportSelectOrMigrate,
        _ => false,
    };

    /// <summary>The linked instruction slots (an ld_imm64 takes two).</summary>
    public Instruction[] Instructions { get; set; }

    /// <summary>The object's license string.</summary>
    public string License { get; init; } = "";

    /// <summary>The object's kernel version (from the <c>version</c> section), if any.</summary>
    public uint? KernelVersion { get; init; }

    /// <summary>Every ld_imm64 that refers to a map or to global data.</summary>
    public IReadOnlyList<MapReference> MapReferences { get; init; } = [];

    /// <summary>
    /// The kernel functions (kfuncs, externs in <c>.ksyms</c>) the program calls: a kfunc call
    /// (<c>call</c> with src 2) has the index of its function's name here as its immediate.
    /// </summary>
    public IReadOnlyList<string> KernelFunctions { get; init; } = [];

    /// <summary>The functions in <see cref="Instructions"/>: the program itself first, then linked subprograms.</summary>
    public IReadOnlyList<FunctionRange> Functions { get; init; } = [];

    /// <summary>BTF func_info, with offsets relative to <see cref="Instructions"/>.</summary>
    public IReadOnlyList<BtfFuncInfo> FuncInfos { get; init; } = [];

    /// <summary>
    /// The object's BTF when the program has func_info: <see cref="BtfFuncInfo.TypeId"/> refers to it, and
    /// the verifier reads each function's linkage and prototype from it (global functions are verified on
    /// their own, as the kernel does). Null without func_info.
    /// </summary>
    public BtfSpec? Btf { get; init; }

    /// <summary>BTF line_info, with offsets relative to <see cref="Instructions"/>, sorted by offset.</summary>
    public IReadOnlyList<BtfLineInfo> LineInfos { get; init; } = [];

    /// <summary>CO-RE relocations of this program, at linked offsets; the loader has applied them to <see cref="Instructions"/>.</summary>
    public IReadOnlyList<BtfCoreRelocation> CoreRelocations { get; init; } = [];

    /// <summary>
    /// The instructions poisoned because their CO-RE relocation needs a type, field or enumerator BpfJit's target types
    /// lack (libbpf's <c>call unknown#195896080</c>), each with libbpf's description of the relocation. The verifier
    /// rejects the program only if one is reachable, naming it (<c>failed to resolve CO-RE relocation</c>).
    /// </summary>
    public IReadOnlyDictionary<int, string> UnresolvedCoreRelocations { get; init; } = new Dictionary<int, string>();

    /// <summary>The helper id of a poisoned instruction (libbpf's 0xbad2310, "bad relo"), which no kernel has.</summary>
    public const int CorePoisonHelper = 0xbad2310;

    /// <summary>Remarks about things the loader recognised but did not act on (CO-RE relocations, unknown section names).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Declares the program's type by hand, for a section name the loader does not recognise.</summary>
    public ProgramSpec SetType(ProgramType type, AttachType? attachType)
    {
        Type = type;
        AttachType = attachType;
        return this;
    }

    /// <summary>The source line recorded for exactly this slot, or null.</summary>
    public BtfLineInfo? LineInfoAt(int instructionIndex)
    {
        // LineInfos is sorted by offset; when several records share a slot the last one wins.
        int lo = 0, hi = LineInfos.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) / 2;
            if (LineInfos[mid].InstructionOffset <= instructionIndex) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        return found >= 0 && LineInfos[found].InstructionOffset == instructionIndex ? LineInfos[found] : null;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({SectionName}): {Type}, {Instructions.Length} slots";
}

/// <summary>The programs of a collection, by position and by name.</summary>
public sealed class ProgramSpecList : IReadOnlyList<ProgramSpec>
{
    readonly List<ProgramSpec> _programs;

    /// <summary>Creates the list.</summary>
    public ProgramSpecList(IEnumerable<ProgramSpec> programs) => _programs = programs.ToList();

    /// <summary>The program at <paramref name="index"/>.</summary>
    public ProgramSpec this[int index] => _programs[index];

    /// <summary>The program called <paramref name="name"/>; throws <see cref="KeyNotFoundException"/> when there is none.</summary>
    public ProgramSpec this[string name] =>
        TryGet(name, out var p) ? p : throw new KeyNotFoundException($"no program named '{name}'");

    /// <summary>Number of programs.</summary>
    public int Count => _programs.Count;

    /// <summary>Finds a program by name.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ProgramSpec? program)
    {
        program = _programs.Find(p => p.Name == name);
        return program != null;
    }

    /// <inheritdoc />
    public IEnumerator<ProgramSpec> GetEnumerator() => _programs.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
