using BpfJit.Frontend;

namespace BpfJit.Runtime.Loading;

/// <summary>
/// A verifier rejection that knows where: the verifier's exception implements this so that layers below it (the
/// collection loader) can say which instruction was refused and keep the log without referencing the verifier.
/// </summary>
public interface IProgramRejection
{
    /// <summary>The slot index of the rejected instruction.</summary>
    int InstructionIndex { get; }

    /// <summary>The verifier's one-line error.</summary>
    string Reason { get; }

    /// <summary>The whole verifier log.</summary>
    string Log { get; }
}

/// <summary>The step of <see cref="BpfCollection.Load(Frontend.Elf.CollectionSpec, CollectionOptions?)"/> that failed.</summary>
public enum CollectionLoadStep
{
    /// <summary>Creating a map, writing its initial value or storing its initial inner maps.</summary>
    Maps,
    /// <summary>Finding the program: no such name, or a program type the runtime does not run.</summary>
    Lookup,
    /// <summary>The verifier rejected the program (or none is installed).</summary>
    Verify,
    /// <summary>A map reference could not be bound to a live map.</summary>
    Bind,
    /// <summary>The engine refused to prepare the program.</summary>
    Prepare,
    /// <summary>Filling a PROG_ARRAY's initial slots.</summary>
    ProgramArray,
}

/// <summary>
/// A step of <see cref="BpfCollection.Load(Frontend.Elf.CollectionSpec, CollectionOptions?)"/> failed. The message says
/// where, in cilium/ebpf's manner (<c>dispatcher.o: section sk_lookup: program dispatcher: insn 12: reason</c>); the
/// parts are properties, and <see cref="Exception.InnerException"/> is the cause (the verifier's exception with its
/// log, a <c>MapCreateException</c>, a <c>ProgramBindException</c> ...).
/// </summary>
public sealed class CollectionLoadException : BpfException
{
    /// <summary>Creates the error; <paramref name="inner"/>'s message is the reason unless <paramref name="reason"/> is given.</summary>
    public CollectionLoadException(CollectionLoadStep step, string fileName, string? section, string? program, string? map, int? instruction, Exception inner, string? reason = null)
        : base(Format(fileName, section, program, map, instruction, reason ?? inner.Message), inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        Step = step;
        FileName = fileName;
        Section = section;
        ProgramName = program;
        MapName = map;
        InstructionIndex = instruction;
        Reason = reason ?? inner.Message;
    }

    /// <summary>The step that failed.</summary>
    public CollectionLoadStep Step { get; }

    /// <summary>The object file.</summary>
    public string FileName { get; }

    /// <summary>The ELF section of the program, or null when the failure is not a program's.</summary>
    public string? Section { get; }

    /// <summary>The program that failed, or null.</summary>
    public string? ProgramName { get; }

    /// <summary>The map that failed, or null.</summary>
    public string? MapName { get; }

    /// <summary>The instruction the failure is at (the verifier's or the binder's), or null.</summary>
    public int? InstructionIndex { get; }

    /// <summary>What went wrong, without the location.</summary>
    public string Reason { get; }

    /// <summary>The verifier log when a program was rejected, or null.</summary>
    public string? VerifierLog => (InnerException as IProgramRejection)?.Log;

    static string Format(string file, string? section, string? program, string? map, int? insn, string reason)
    {
        var parts = new List<string> { file };
        if (section != null) parts.Add($"section {section}");
        if (program != null) parts.Add($"program {program}");
        if (map != null) parts.Add($"map {map}");
        if (insn is { } i) parts.Add($"insn {i}");
        parts.Add(reason);
        return string.Join(": ", parts);
    }
}
