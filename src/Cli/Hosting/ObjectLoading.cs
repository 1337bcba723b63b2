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
            throw new BpfException(e.InnerException is MapCreateException create
                ? $"{path}: map {e.MapName}: {create.Message}{mapHint}"
                : $"{path}: map {e.MapName}: {e.Reason}", e);
        }
        catch (CollectionLoadException e) when (e.ProgramName == null)
        {
            throw new BpfException($"{path}: {e.Reason}", e);
        }
    }
}
