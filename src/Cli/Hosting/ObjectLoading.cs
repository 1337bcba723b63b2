using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Maps;
using BpfJit.Verifier;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// The CLI's use of <see cref="BpfCollection"/>: every verb that makes an object live loads it here, with the
/// verifier the tool ships, and reports a failure in the tool's words (a verifier rejection exits 1 as a
/// <see cref="ProgramRejectedException"/>; anything else is bad input naming the file).
/// </summary>
public static class ObjectLoading
{
    /// <summary>
    /// Loads <paramref name="spec"/> (parsed from <paramref name="path"/>) as <paramref name="options"/> say, verified by
    /// <see cref="SkLookupProgramVerifier"/> unless the options name another; <paramref name="mapHint"/> follows a map
    /// creation error.
    /// </summary>
    public static BpfCollection Load(string path, CollectionSpec spec, CollectionOptions options, string mapHint = "")
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            return BpfCollection.Load(spec, options with { Verifier = options.Verifier ?? new SkLookupProgramVerifier() });
        }
        catch (CollectionLoadException e) when (e.InnerException is BpfVerifierException v)
        {
            throw new ProgramRejectedException($"{path}: program {e.ProgramName}: verifier rejected the program at insn {v.Result.ErrorInsn}: {v.Result.Error}");
        }
        catch (CollectionLoadException e) when (e.MapName != null)
        {
            throw MapError(path, e, mapHint);
        }
        catch (CollectionLoadException e) when (e.ProgramName == null)
        {
            throw new BpfException($"{path}: {e.Reason}", e);
        }
    }

    /// <summary>
    /// Checks the maps of <paramref name="spec"/> (parsed from <paramref name="path"/>) as <see cref="Load"/> creates them,
    /// allocating nothing (<see cref="BpfCollection.ValidateMaps"/>): the verbs that only verify an object's programs
    /// (verify, cfg) refuse an object whose map BPF_MAP_CREATE refuses, before its programs, as libbpf does, with the
    /// error <see cref="Load"/> gives.
    /// </summary>
    public static void ValidateMaps(string path, CollectionSpec spec, string mapHint = "")
    {
        try { BpfCollection.ValidateMaps(spec); }
        catch (CollectionLoadException e) when (e.MapName != null) { throw MapError(path, e, mapHint); }
    }

    /// <summary>
    /// A map step's failure in one line: <c>x.o: map m (Array): max_entries 0 (-EINVAL)</c> and <paramref name="mapHint"/>
    /// for a map the factory refused (its message names the map, its type and the field), <c>x.o: map m: why</c> for a
    /// later step (its initial value).
    /// </summary>
    public static BpfException MapError(string path, CollectionLoadException e, string mapHint = "")
    {
        ArgumentNullException.ThrowIfNull(e);
        return new BpfException(e.InnerException is MapCreateException create
            ? $"{path}: {create.Message}{mapHint}"
            : $"{path}: map {e.MapName}: {e.Reason}", e);
    }
}
