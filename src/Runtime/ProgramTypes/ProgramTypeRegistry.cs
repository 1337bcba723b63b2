using BpfJit.Frontend.Elf;
using BpfJit.Runtime.ProgramTypes.SkLookup;
using BpfJit.Runtime.ProgramTypes.SkReuseport;

namespace BpfJit.Runtime.ProgramTypes;

/// <summary>The program types BpfJit supports, each by its one declaration.</summary>
public static class ProgramTypeRegistry
{
    static readonly IProgramTypeDefinition[] s_all = [SkLookupType.Instance, SkReuseportType.Instance];

    /// <summary>Every supported type, in kernel id order.</summary>
    public static IReadOnlyList<IProgramTypeDefinition> All => s_all;

    /// <summary>The declaration of <paramref name="type"/>, or null when BpfJit does not support it.</summary>
    public static IProgramTypeDefinition? Find(ProgramType type)
    {
        foreach (var d in s_all) if (d.Type == type) return d;
        return null;
    }

    /// <summary>The declaration of <paramref name="type"/>; throws <see cref="NotSupportedException"/> when BpfJit does not support it.</summary>
    public static IProgramTypeDefinition Get(ProgramType type) =>
        Find(type) ?? throw new NotSupportedException($"program type {type} is not supported");

    /// <summary>True when <paramref name="type"/> is supported and <paramref name="attach"/> (null: none given) is one of its expected attach types.</summary>
    public static bool IsSupported(ProgramType type, AttachType? attach) =>
        Find(type) is { } d && (attach is null || d.ExpectedAttachTypes.Contains(attach.Value));
}
