using System.CommandLine;
using System.CommandLine.Invocation;
using BpfJit.Cli.Commands;
using BpfJit.Cli.Parsing;
using BpfJit.Frontend;

namespace BpfJit.Cli;

/// <summary>
/// One verb of the bpfjit tool: its name, one-line summary, usage text (synopsis, what it does, output, exit codes,
/// examples), the options it takes and the body that runs it. A hidden verb (a protocol for scripts) works but is
/// not listed in the help.
/// </summary>
public sealed record CommandInfo(string Name, string Summary, string Usage, Func<Args, TextWriter, TextWriter, int> Run, bool Hidden = false)
{
    /// <summary>The name of its positional arguments in the help (<c>OBJECT</c>, <c>PATH</c>).</summary>
    public string Operands { get; init; } = "ARGS";

    /// <summary>Its options, declared once (<see cref="Opt"/>): the parser, the help and shell completion use them.</summary>
    public IReadOnlyList<Option> Options { get; init; } = [];
}

/// <summary>The bpfjit command line: dispatches a verb; exit 0 ok, 1 negative result, 2 bad input or usage.</summary>
public static class Cli
{
    /// <summary>Exit code: success.</summary>
    public const int Ok = 0;
    /// <summary>Exit code: a negative result (a test failed, a program was rejected).</summary>
    public const int Negative = 1;
    /// <summary>Exit code: bad input or usage.</summary>
    public const int BadInput = 2;

    /// <summary>Every verb, in the order help lists them.</summary>
    public static IReadOnlyList<CommandInfo> Commands { get; } =
    [
        DemoCommand.Info,
        RunCommand.Info,
        ScenarioCommand.Info,
        ReplayCommand.Info,
        BenchCommand.Info,
        VerifyCommand.Info,
        CfgCommand.Info,
        InspectCommand.Info,
        DisasmCommand.Info,
        DumpCommand.Info,
        BtfCommand.Info,
        FeatureCommand.Info,
        ConformanceCommand.Info,
        CompletionCommand.Info,
        PluginCommand.Info,
    ];

    /// <summary>Runs the tool with <paramref name="args"/>; never throws for bad input.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length == 0)
        {
            CliParser.PrintHelp(stdout);
            return BadInput;
        }
        if (args[0] == "help") return Run(args.Length > 1 ? [args[1], "--help"] : ["--help"], stdout, stderr);
        var result = CliParser.Parse(args);
        var verb = CliParser.Verb(result);
        // --help, --version and the [suggest] directive of shell completion; help wins over a bad line, as it did.
        if (result.Action is not (null or ParseErrorAction))
            return result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        if (CliParser.UsageError(result) is { } error)
        {
            if (verb is not { } bad)
            {
                stderr.WriteLine($"bpfjit: unknown command '{args[0]}' (try 'bpfjit --help')");
                return BadInput;
            }
            return Fail(bad.Info, args.Contains("--json"), stdout, stderr, $"{error} (try 'bpfjit {bad.Info.Name} --help')", BadInput);
        }
        if (verb is not { } command)
        {
            CliParser.PrintHelp(stdout);
            return BadInput;
        }
        return Execute(command.Info, command.Args, stdout, stderr);
    }

    static int Execute(CommandInfo command, Args args, TextWriter stdout, TextWriter stderr)
    {
        bool json = command.Options.Any(o => o.Name == "--json") && args.Has("--json");
        try
        {
            return command.Run(args, stdout, stderr);
        }
        catch (UsageException e)
        {
            return Fail(command, json, stdout, stderr, $"{e.Message} (try 'bpfjit {command.Name} --help')", BadInput);
        }
        catch (Hosting.ProgramRejectedException e)
        {
            return Fail(command, json, stdout, stderr, e.Message, Negative);
        }
        catch (BpfException e)
        {
            return Fail(command, json, stdout, stderr, e.Message, BadInput);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(command, json, stdout, stderr, e.Message, BadInput);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or StackOverflowException or AccessViolationException))
        {
            // A bug, not the user's input: still one line and exit 2, never a stack trace; the type says where to look.
            return Fail(command, json, stdout, stderr, $"internal error ({e.GetType().Name}): {e.Message}", BadInput);
        }
    }

    /// <summary>
    /// The one error shape of every verb: one stderr line <c>bpfjit VERB: FILE: what</c>, and with
    /// <c>--json</c> also <c>{"error": "FILE: what", "exit": N}</c> on stdout.
    /// </summary>
    static int Fail(CommandInfo command, bool json, TextWriter stdout, TextWriter stderr, string message, int code)
    {
        string text = message.ReplaceLineEndings(" ").Trim();
        stderr.WriteLine($"bpfjit {command.Name}: {text}");
        if (json)
            Output.JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("error", text);
                w.WriteNumber("exit", code);
                w.WriteEndObject();
            });
        return code;
    }
}

/// <summary>A command line that does not fit its verb's usage.</summary>
public sealed class UsageException(string message) : Exception(message);
