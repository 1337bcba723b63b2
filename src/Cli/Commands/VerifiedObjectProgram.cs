using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Cli.Hosting;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Verifier;

namespace BpfJit.Cli.Commands;

/// <summary>
/// An object's SK_LOOKUP or SK_REUSEPORT program made ready the way every path loads it (<see cref="BpfCollection"/>), without an
/// engine: the object's maps created (initial values written, .rodata frozen), the program verified against them,
/// its map references bound and its ctx loads rewritten, with the verifier's facts for the JIT. Owns the maps.
/// </summary>
public sealed class VerifiedObjectProgram : IDisposable
{
    readonly BpfCollection _live;

    VerifiedObjectProgram(string name, Instruction[] code, ProgramFacts facts, BpfCollection live, HelperTable helpers, BoundProgram bound)
    {
        Name = name;
        Code = code;
        Facts = facts;
        _live = live;
        Helpers = helpers;
        References = bound.References;
    }

    /// <summary>Where the binder put a map or map value address into an ld_imm64, by slot.</summary>
    public IReadOnlyList<BoundMapReference> References { get; }

    /// <summary>The object the program came from.</summary>
    public CollectionSpec Collection { get; private init; } = null!;

    /// <summary>The program as the object holds it.</summary>
    public ProgramSpec Spec { get; private init; } = null!;

    /// <summary>The program's name.</summary>
    public string Name { get; }

    /// <summary>The instructions an engine runs (bound, ctx loads rewritten).</summary>
    public Instruction[] Code { get; }

    /// <summary>What the verifier proved, with each helper call's live map.</summary>
    public ProgramFacts Facts { get; }

    /// <summary>The helper table of the program's type.</summary>
    public HelperTable Helpers { get; }

    /// <summary>The maps created for the object, in the object's order.</summary>
    public IReadOnlyList<BpfMap> Maps => _live.Maps;

    /// <summary>
    /// Loads <paramref name="path"/> and prepares its program <paramref name="program"/> (default: the first
    /// SK_LOOKUP program, else the first SK_REUSEPORT one); <paramref name="mapSizes"/>, the text of <c>--map</c>
    /// (<see cref="MapSizeOption"/>), sets the key, value and entry sizes of maps by name.
    /// </summary>
    public static VerifiedObjectProgram Load(string path, string? program, string? mapSizes = null)
    {
        var collection = ObjectFile.Load(path);
        MapSizeOption.Apply(mapSizes, collection, path);
        var spec = program == null
            ? collection.Programs.FirstOrDefault(p => p.IsSupported && p.Type == ProgramType.SkLookup)
                ?? collection.Programs.FirstOrDefault(p => p.IsSupported && p.Type == ProgramType.SkReuseport)
            : collection.Programs.TryGet(program, out var named) ? named : null;
        if (spec == null)
            throw new BpfException($"{path}: no {(program == null ? "SK_LOOKUP or SK_REUSEPORT program in the object" : $"program named '{program}'")} (programs: {string.Join(", ", collection.Programs.Select(p => p.Name))})");
        if (!spec.IsSupported || spec.Type is not (ProgramType.SkLookup or ProgramType.SkReuseport))
            throw new BpfException($"{path}: section {spec.SectionName}: program {spec.Name}: program type {spec.Type} is not supported (only sk_lookup and sk_reuseport)");
        bool reuseport = spec.Type == ProgramType.SkReuseport;
        BpfCollection live;
        try
        {
            // Verified and bound, not prepared: dump emits the IL itself from the code and facts. An SK_REUSEPORT program
            // is prepared on the interpreter for the code its engines run: its narrow-load rewrite is the program's own.
            live = BpfCollection.Load(collection, new CollectionOptions
            {
                Verifier = new SkLookupProgramVerifier(),
                Engine = reuseport ? BpfEngines.Get("interpreter") : null,
                Programs = [spec.Name],
            });
        }
        catch (CollectionLoadException e) when (e.InnerException is BpfVerifierException or ProgramBindException)
        {
            // The verifier's and the binder's own errors, as dump has always reported them.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
        catch (CollectionLoadException e) when (e.MapName != null)
        {
            throw ObjectLoading.MapError(path, e, MapSizeOption.Hint);
        }
        var loaded = live.Programs[spec.Name];
        var code = loaded.ReuseportProgram?.Instructions ?? CtxLoadRewriter.Rewrite(loaded.Bound.Code);
        return new VerifiedObjectProgram(spec.Name, code, loaded.Facts!, live, loaded.Helpers, loaded.Bound) { Collection = collection, Spec = spec };
    }

    /// <inheritdoc />
    public void Dispose() => _live.Dispose();
}
