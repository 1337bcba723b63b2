using BpfJit.Frontend.Btf;

namespace BpfJit.Frontend.Elf;

/// <summary>Everything an object file declares: programs, maps, license, kernel version and BTF.</summary>
public sealed class CollectionSpec
{
    /// <summary>The file name given to the loader.</summary>
    public required string FileName { get; init; }

    /// <summary>The programs, in section order and then symbol order.</summary>
    public required ProgramSpecList Programs { get; init; }

    /// <summary>The maps; a map reference's index is a position in this list.</summary>
    public required MapSpecList Maps { get; init; }

    /// <summary>The <c>license</c> section's string ("" when absent).</summary>
    public string License { get; init; } = "";

    /// <summary>The <c>version</c> section's value, if present.</summary>
    public uint? KernelVersion { get; init; }

    /// <summary>The parsed .BTF (with .BTF.ext), if present.</summary>
    public BtfSpec? Btf { get; init; }
}
