using System.CommandLine;

namespace BpfJit.Cli;

/// <summary>
/// Declarations of the verbs' options, each once with its kind (a flag, or an option with a value), the value's
/// name in the help and a one-line description; the values are checked by the verb (so the messages keep
/// their wording, e.g. <c>--repeat must be a positive number, not 'x'</c>). A valued option whose choices are
/// known completes them in the shell.
/// </summary>
public static class Opt
{
    /// <summary>An option that takes no value: given or not.</summary>
    public static Option Flag(string name, string description, params string[] aliases) =>
        new Option<bool>(name, aliases) { Description = description, Arity = ArgumentArity.Zero };

    /// <summary>An option that takes one value (<c>--name VALUE</c> or <c>--name=VALUE</c>); <paramref name="choices"/> complete it.</summary>
    public static Option Value(string name, string valueName, string description, params string[] choices) =>
        Value(name, [], valueName, description, choices);

    /// <summary>As <see cref="Value(string, string, string, string[])"/>, with short <paramref name="aliases"/> (<c>-o</c>).</summary>
    public static Option Value(string name, string[] aliases, string valueName, string description, params string[] choices)
    {
        var option = new Option<string>(name, aliases) { Description = description, HelpName = valueName, Arity = ArgumentArity.ExactlyOne };
        if (choices.Length > 0) option.CompletionSources.Add(choices);
        return option;
    }

    /// <summary>An option no longer offered: parsed, so that the verb can say where it went, but not in the help or completion.</summary>
    public static Option Retired(string name, string valueName) =>
        new Option<string>(name) { HelpName = valueName, Arity = ArgumentArity.ExactlyOne, Hidden = true };

    /// <summary>The <c>--json</c> flag every verb takes.</summary>
    public static Option Json() => Flag("--json", "print one JSON object (the shapes are in docs/cli.md)");
}
