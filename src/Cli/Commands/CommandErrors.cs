using BpfJit.Frontend;

namespace BpfJit.Cli.Commands;

/// <summary>Exit codes and the one-line error format shared by commands.</summary>
public static class CommandErrors
{
    /// <summary>Exit code for bad usage or bad input.</summary>
    public const int BadInput = 2;

    /// <summary>Writes "error: ..." and the usage line; returns <see cref="BadInput"/>.</summary>
    public static int Usage(TextWriter stderr, string usage, string problem)
    {
        stderr.WriteLine($"error: {problem} ({usage})");
        return BadInput;
    }

    /// <summary>Writes the error's one-line message (no stack trace); returns <see cref="BadInput"/>.</summary>
    public static int Fail(TextWriter stderr, BpfException e)
    {
        stderr.WriteLine($"error: {e.Message.ReplaceLineEndings(" ")}");
        return BadInput;
    }
}
