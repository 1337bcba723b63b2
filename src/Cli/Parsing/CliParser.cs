using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Text;

namespace BpfJit.Cli.Parsing;

/// <summary>
/// The <c>bpfjit</c> command line on System.CommandLine: one <see cref="Command"/> per verb with the options it
/// declares, POSIX parsing (<c>--opt=value</c>, <c>-Sh</c> bundles), the help built from the declarations and the
/// verbs' usage texts, and the <c>[suggest]</c> directive that shell completion calls
/// (<see cref="Commands.CompletionCommand"/>). Parse errors become the tool's one-line usage errors.
/// </summary>
public static class CliParser
{
    static readonly Lazy<(RootCommand Root, Dictionary<Command, (CommandInfo Info, Argument<string[]> Operands)> Verbs)> s_tree = new(Build);

    static readonly ParserConfiguration s_config = new()
    {
        // '@file' is a file name here (an object may be called so), not a response file of more arguments.
        ResponseFileTokenReplacer = null,
    };

    /// <summary>The root command (<c>bpfjit</c>), its verbs as subcommands.</summary>
    public static RootCommand Root => s_tree.Value.Root;

    /// <summary>Parses <paramref name="args"/>.</summary>
    public static ParseResult Parse(IReadOnlyList<string> args) => Root.Parse(args, s_config);

    /// <summary>The verb a parse result ran into, with the view its body reads; null at the root (no or an unknown verb).</summary>
    public static (CommandInfo Info, Args Args)? Verb(ParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var command = result.CommandResult.Command;
        return s_tree.Value.Verbs.TryGetValue(command, out var v) ? (v.Info, new Args(result, v.Operands, command.Options)) : null;
    }

    /// <summary>
    /// The first usage error of a parse as the tool words it (<c>unknown option '--x'</c>, <c>option --program
    /// needs a value</c>), or null when the command line fits the verb.
    /// </summary>
    public static string? UsageError(ParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.UnmatchedTokens.Count > 0)
        {
            string token = result.UnmatchedTokens[0];
            return LooksLikeOption(token) ? $"unknown option '{token}'" : $"unexpected argument '{token}'";
        }
        if (result.Errors.Count > 0)
        {
            var error = result.Errors[0];
            if (error.SymbolResult is OptionResult { Tokens.Count: 0 } option && option.Option.Arity.MinimumNumberOfValues > 0)
                return $"option {option.Option.Name} needs a value";
            return error.Message;
        }
        // An undeclared '--x' is an operand to System.CommandLine (the verbs take any number of them); here it is an
        // unknown option, unless it follows '--' (a file named '-x').
        foreach (var token in result.Tokens)
        {
            if (token.Type == TokenType.DoubleDash) break;
            if (token.Type == TokenType.Argument && LooksLikeOption(token.Value) && result.CommandResult.Children.OfType<ArgumentResult>().Any(a => a.Tokens.Contains(token)))
                return $"unknown option '{token.Value}'";
        }
        return null;
    }

    static bool LooksLikeOption(string token) => token.Length > 1 && token[0] == '-';

    static (RootCommand, Dictionary<Command, (CommandInfo, Argument<string[]>)>) Build()
    {
        var root = new RootCommand("bpfjit: run eBPF SK_LOOKUP programs in .NET (verify, JIT-compile to IL, or interpret)");
        foreach (var help in root.Options.OfType<HelpOption>()) help.Action = new UsageAction();
        var verbs = new Dictionary<Command, (CommandInfo, Argument<string[]>)>();
        foreach (var info in Cli.Commands)
        {
            var command = new Command(info.Name, info.Summary) { Hidden = info.Hidden };
            // The verbs check how many operands they got, so that the message names them ('no OBJECT given').
            var operands = new Argument<string[]>(info.Operands) { Arity = ArgumentArity.ZeroOrMore, HelpName = info.Operands };
            command.Arguments.Add(operands);
            foreach (var option in info.Options) command.Options.Add(option);
            verbs[command] = (info, operands);
            root.Subcommands.Add(command);
        }
        return (root, verbs);
    }

    /// <summary>
    /// A verb's help: its usage text (synopsis, what it does, output, exit codes), the options table generated
    /// from its declarations, then its examples.
    /// </summary>
    public static string Help(CommandInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        string usage = info.Usage.TrimEnd().ReplaceLineEndings("\n");
        var rows = info.Options.Where(o => !o.Hidden).Select(o => (Names: OptionNames(o), o.Description ?? "")).ToList();
        rows.Add(("-h, --help", "this help"));
        int width = rows.Max(r => r.Names.Length) + 2;
        var table = new StringBuilder("options:\n");
        foreach (var (names, description) in rows) table.Append("  ").Append(names.PadRight(width)).Append(description).Append('\n');
        // The table goes before the examples, so that they stay last (what a reader copies from).
        int examples = usage.IndexOf("\nexample", StringComparison.Ordinal);
        string text = examples < 0 ? $"{usage}\n\n{table}" : $"{usage[..examples]}\n{table}{usage[examples..]}\n";
        return text.ReplaceLineEndings();
    }

    static string OptionNames(Option option)
    {
        var names = option.Aliases.Order(StringComparer.Ordinal).Append(option.Name);
        string value = option.Arity.MaximumNumberOfValues > 0 ? $" {option.HelpName ?? "VALUE"}" : "";
        return string.Join(", ", names) + value;
    }

    /// <summary>The top-level help: the verbs with their summaries.</summary>
    public static void PrintHelp(TextWriter w)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteLine(Root.Description);
        w.WriteLine();
        w.WriteLine("usage: bpfjit COMMAND [ARGS...]   ('bpfjit COMMAND --help' for details and examples)");
        w.WriteLine();
        foreach (var c in Cli.Commands.Where(c => !c.Hidden)) w.WriteLine($"  {c.Name,-12} {c.Summary}");
        w.WriteLine();
        w.WriteLine("every verb takes --json for a machine-readable result (shapes in docs/cli.md)");
        w.WriteLine("exit codes: 0 ok, 1 negative result (test failed, program rejected), 2 bad input or usage");
        w.WriteLine("shell completion: 'bpfjit completion bash' (or zsh) prints the script to source");
    }

    /// <summary><c>--help</c>/<c>-h</c> anywhere: the help of the verb it follows, or the top-level help; other errors do not matter then.</summary>
    sealed class UsageAction : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var output = parseResult.InvocationConfiguration.Output;
            if (Verb(parseResult) is { } verb) output.Write(Help(verb.Info));
            else PrintHelp(output);
            return Cli.Ok;
        }
    }
}
