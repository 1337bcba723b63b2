using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.ProgramTypes;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Verifier;

/// <summary>
/// The runtime's <see cref="IProgramVerifier"/>: verifies an object's SK_LOOKUP or SK_REUSEPORT program (by its type) against the live
/// maps it will be bound to (their definitions, including host patches such as tubular's zero-sized
/// map) and the runtime's helper table, with the object's line info in the log.
/// </summary>
public sealed class SkLookupProgramVerifier : IProgramVerifier
{
    /// <summary>The value of a frozen, program-read-only, single-entry ARRAY (global <c>.rodata</c>), or null.</summary>
    static byte[]? FrozenValue(BpfMap map)
    {
        if (!map.IsFrozen || (map.Flags & MapSpec.FlagReadOnlyProgram) == 0 || map.Type != MapType.Array || map.MaxEntries != 1) return null;
        var value = new byte[map.ValueSize];
        return map.Lookup(new byte[4], value) == 0 ? value : null;
    }

    /// <summary>The verifier's view of a map-in-map's template (the kernel's inner_map_meta).</summary>
    static MapInfo Template(MapDefinition t) => new(t.Name, t.Type, t.KeySize, t.ValueSize, t.MaxEntries, t.Flags,
        IsReadOnly: (t.Flags & MapSpec.FlagReadOnlyProgram) != 0, SpinLockOffset: t.SpinLockOffset,
        HasBtf: t.SpinLockOffset >= 0 || t.TimerOffset >= 0 || t.Kptrs is { Count: > 0 }, TimerOffset: t.TimerOffset, Kptrs: t.Kptrs);

    /// <summary>Install with <c>ProgramVerification.Verifier = new SkLookupProgramVerifier()</c>.</summary>
    public void Verify(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers) => VerifyWithFacts(program, maps, helpers);

    /// <summary>Verifies and returns the facts for the JIT, with each helper call's map resolved to its live map in <paramref name="maps"/>.</summary>
    public ProgramFacts VerifyWithFacts(ProgramSpec program, IReadOnlyList<BpfMap> maps, HelperTable helpers)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(maps);
        var infos = maps.Select(m => new MapInfo(m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags,
            IsReadOnly: (m.Flags & MapSpec.FlagReadOnlyProgram) != 0, FrozenValue: FrozenValue(m),
            SpinLockOffset: m.SpinLockOffset, HasBtf: m.SpinLockOffset >= 0 || m.TimerOffset >= 0 || m.Kptrs.Count > 0,
            InnerMap: m is MapOfMaps outer ? Template(outer.Template) : null, TimerOffset: m.TimerOffset, Kptrs: m.Definition.Kptrs)).ToList();
        // The program's own type when BpfJit supports it (an SK_REUSEPORT program too); otherwise SK_LOOKUP's rules.
        var type = ProgramTypeRegistry.Find(program.Type) != null ? program.Type : ProgramType.SkLookup;
        var result = ObjectVerification.NameCoreFailure(program, Verifier.Verify(program.Instructions, new VerifierOptions
        {
            ProgramType = type,
            Helpers = helpers, Maps = infos, LogLevel = 1, LineInfo = ObjectVerification.SourceLines(program),
            FuncInfos = program.FuncInfos.Count > 0 ? program.FuncInfos : null, Btf = program.Btf,
            KernelFunctions = program.KernelFunctions, License = program.License,
            MapFdIsIndex = false, // a program's map references are BPF_PSEUDO_MAP_IDX; an fd left in it is no map
        })).ThrowIfRejected();
        return result.ToProgramFacts(program.Instructions, maps, type);
    }
}
