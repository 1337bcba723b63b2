using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.ProgramTypes;

namespace BpfJit.Verifier;

/// <summary>
/// Verifies programs of a loaded object (<see cref="CollectionSpec"/>) as they come from the loader:
/// map references are still symbolic (ld_imm64 src 5/6 = index into <see cref="CollectionSpec.Maps"/>),
/// so the verifier sees each map's definition, and BTF line info names the C source line of an error.
/// </summary>
public static class ObjectVerification
{
    /// <summary>The verifier's view of a map definition from the loader.</summary>
    public static MapInfo ToMapInfo(MapSpec map)
    {
        ArgumentNullException.ThrowIfNull(map);
        bool readOnly = map.Frozen || (map.Flags & MapSpec.FlagReadOnlyProgram) != 0;
        bool frozenConstant = map.Frozen && (map.Flags & MapSpec.FlagReadOnlyProgram) != 0 && map.MaxEntries == 1;
        // Sizes the runtime refuses are refused when maps are created (MapFactory.Validate); the verifier's view only
        // must not overflow: every u32 above 2^31 - 1 reads as 2^31 - 1 (an LPM_TRIE's max_entries is held so too).
        return new MapInfo(map.Name, map.Type, Saturate(map.KeySize), Saturate(map.ValueSize),
            Saturate(map.MaxEntries), map.Flags, readOnly, frozenConstant ? map.InitialValue : null,
            SpinLockOffset: map.SpinLockOffset, HasBtf: map.BtfValueTypeId != 0, InnerMap: map.InnerMap is { } inner ? ToMapInfo(inner) : null,
            TimerOffset: map.TimerOffset, Kptrs: map.Kptrs.Count > 0 ? map.Kptrs : null);
    }

    static int Saturate(uint n) => (int)Math.Min(n, int.MaxValue);

    /// <summary>The verifier options for <paramref name="program"/> of <paramref name="collection"/>.</summary>
    public static VerifierOptions Options(CollectionSpec collection, ProgramSpec program, HelperTable helpers, int logLevel = 1)
    {
        ArgumentNullException.ThrowIfNull(collection);
        ArgumentNullException.ThrowIfNull(program);
        var funcs = program.FuncInfos.ToDictionary(f => f.InstructionOffset, f => f.Name);
        return new VerifierOptions
        {
            Helpers = helpers,
            Maps = collection.Maps.Select(ToMapInfo).ToList(),
            LogLevel = logLevel,
            LineInfo = SourceLines(program),
            FuncInfo = funcs.Count > 0 ? funcs : null,
            FuncInfos = program.FuncInfos.Count > 0 ? program.FuncInfos : null,
            Btf = program.Btf ?? collection.Btf,
            KernelFunctions = program.KernelFunctions,
            MapFdIsIndex = false, // a program's map references are BPF_PSEUDO_MAP_IDX; an fd left in it is no map
            License = program.License,
            // The type the section names when BpfJit supports it; an unsupported one is checked as SK_LOOKUP, as before.
            ProgramType = ProgramTypeRegistry.Find(program.Type) != null ? program.Type : ProgramType.SkLookup,
        };
    }

    /// <summary>
    /// The C source line of each slot (<c>"return SK_PASS; @ prog.c:12"</c>) from BTF line info, or null
    /// without it. A line record marks the first slot of a source line; the slots after it belong to it too.
    /// </summary>
    public static IReadOnlyDictionary<int, string>? SourceLines(ProgramSpec program)
    {
        ArgumentNullException.ThrowIfNull(program);
        var lines = new Dictionary<int, string>();
        string? current = null;
        for (int i = 0; i < program.Instructions.Length; i++)
        {
            if (program.LineInfoAt(i) is { } line && line.Line.Length > 0)
                current = $"{line.Line.Trim()} @ {Path.GetFileName(line.FileName)}:{line.LineNumber}";
            if (current != null) lines[i] = current;
        }
        return lines.Count > 0 ? lines : null;
    }

    /// <summary>Verifies one program of a loaded object.</summary>
    public static VerifierResult Verify(CollectionSpec collection, ProgramSpec program, HelperTable helpers, int logLevel = 1) =>
        NameCoreFailure(program, Verifier.Verify(program.Instructions, Options(collection, program, helpers, logLevel)));

    /// <summary>
    /// A rejection at an instruction the loader poisoned for an unresolved CO-RE relocation names the relocation, as
    /// libbpf's log fixup (fixup_log_failed_core_relo) does: <c>N: &lt;invalid CO-RE relocation&gt;</c>, then
    /// <c>failed to resolve CO-RE relocation</c> and where. Any other result is returned as it is.
    /// </summary>
    internal static VerifierResult NameCoreFailure(ProgramSpec program, VerifierResult result)
    {
        if (result.Accepted || !program.UnresolvedCoreRelocations.TryGetValue(result.ErrorInsn, out var reason)) return result;
        string poisoned = $"invalid func unknown#{ProgramSpec.CorePoisonHelper}";
        string line = $"{result.ErrorInsn}: <invalid CO-RE relocation>";
        var log = string.Join('\n', result.Log.Split('\n').Select(l =>
            l == poisoned ? reason : l.StartsWith($"{result.ErrorInsn}: (85) call", StringComparison.Ordinal) ? line : l));
        return new VerifierResult(false, log, reason, result.ErrorInsn, [.. result.Facts], result.InsnsProcessed, [.. result.StackDepths], result.MayReadUninitStack)
        {
            MayExposeAddresses = result.MayExposeAddresses,
            Stats = result.Stats,
        };
    }
}
