using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;

namespace BpfJit.Runtime.Loading;

/// <summary>
/// What a host chooses when it loads an object with <see cref="BpfCollection.Load(CollectionSpec, CollectionOptions?)"/>
/// (cilium/ebpf's CollectionOptions, libbpf's bpf_object_open_opts plus the calls a loader makes between open and load).
/// Every field has a default that loads the whole object the way libbpf would.
/// </summary>
public sealed record CollectionOptions
{
    /// <summary>
    /// The engine programs are prepared on; null loads them verified and bound but not prepared
    /// (<see cref="CollectionProgram.Program"/> stays null: <c>bpfjit dump</c> emits the IL itself).
    /// </summary>
    public IBpfEngine? Engine { get; init; }

    /// <summary>
    /// False skips the verifier (<c>bpfjit run --no-verify</c>): the host must pass a checking engine (the
    /// interpreter, or the JIT in checked mode), so a bad access faults instead of touching memory.
    /// </summary>
    public bool Verify { get; init; } = true;

    /// <summary>The verifier; null uses the installed <see cref="ProgramVerification.Verifier"/>.</summary>
    public IProgramVerifier? Verifier { get; init; }

    /// <summary>
    /// The programs loaded by <see cref="BpfCollection.Load(CollectionSpec, CollectionOptions?)"/> itself, by name; null
    /// loads every program of a supported type in section order. Programs a PROG_ARRAY's initial slots name are loaded
    /// too (libbpf's init_prog_array_slots); any other is loaded on demand by <see cref="BpfCollection.LoadProgram"/>.
    /// </summary>
    public IReadOnlyCollection<string>? Programs { get; init; }

    /// <summary>
    /// Live maps used in place of the object's maps of the same name (cilium/ebpf's MapReplacements, libbpf's
    /// bpf_map__reuse_fd; a scenario's maps): the collection neither creates, fills nor disposes them.
    /// </summary>
    public IReadOnlyDictionary<string, BpfMap>? MapReplacements { get; init; }

    /// <summary>
    /// A host's change to a map's creation attributes (libbpf's bpf_map__set_value_size and friends; tubular sizes
    /// its zero-sized <c>destinations</c>): given the object's map and the definition it declares (with its BTF
    /// spin-lock offset and map-in-map template), returns the definition to create.
    /// </summary>
    public Func<MapSpec, MapDefinition, MapDefinition>? MapDefinition { get; init; }
}
