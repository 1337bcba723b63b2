using System.CommandLine;
using System.CommandLine.Parsing;

namespace BpfJit.Cli;

/// <summary>
/// What a verb reads of its parsed command line: the positional arguments, and its options by name (as declared
/// in its <see cref="CommandInfo.Options"/>). A name the verb did not declare is a bug, not bad input.
/// </summary>
public sealed class Args
{
    readonly ParseResult _result;
    readonly Argument<string[]> _operands;
    readonly Dictionary<string, Option> _options;

    internal Args(ParseResult result, Argument<string[]> operands, IEnumerable<Option> options)
    {
        _result = result;
        _operands = operands;
        _options = options.ToDictionary(o => o.Name, StringComparer.Ordinal);
    }

    /// <summary>The positional arguments, in order.</summary>
    public IReadOnlyList<string> Positional => _result.GetValue(_operands) ?? [];

    /// <summary>True when the option <paramref name="name"/> was given.</summary>
    public bool Has(string name) => _result.GetResult(Declared(name)) is { Implicit: false };

    /// <summary>The value of the option <paramref name="name"/>, or <paramref name="fallback"/> when it was not given.</summary>
    public string? Get(string name, string? fallback = null) =>
        Has(name) && Declared(name) is Option<string> valued ? _result.GetValue(valued) : fallback;

    /// <summary>An option whose value must be one of <paramref name="choices"/>.</summary>
    public string Choice(string name, string fallback, params string[] choices)
    {
        string v = Get(name, fallback)!;
        if (!choices.Contains(v)) throw new UsageException($"{name} must be one of {string.Join(", ", choices)}, not '{v}'");
        return v;
    }

    Option Declared(string name) => _options.TryGetValue(name, out var o) ? o
        : throw new InvalidOperationException($"the verb reads option {name}, which it does not declare");
}
