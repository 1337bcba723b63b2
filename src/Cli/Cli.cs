using BpfJit.Cli.Commands;
using BpfJit.Frontend;

namespace BpfJit.Cli;

/// <summary>One verb of the bpfjit tool; a hidden verb (a protocol for scripts) works but is not listed in the help.</summary>
public sealed record CommandInfo(string Name, string Summary, string Usage, Func<string[], TextWriter, TextWriter, int> Run, bool Hidden = false);

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
        ConformanceCommand.Info,
        PluginCommand.Info,
    ];

    /// <summary>Runs the tool with <paramref name="args"/>; never throws for bad input.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            if (args.Length > 1) return Run([args[1], "--help"], stdout, stderr);
            PrintHelp(stdout);
            return args.Length == 0 ? BadInput : Ok;
        }
        var command = Commands.FirstOrDefault(c => c.Name == args[0]);
        if (command == null)
        {
            stderr.WriteLine($"bpfjit: unknown command '{args[0]}' (try 'bpfjit --help')");
            return BadInput;
        }
        string[] rest = args[1..];
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            stdout.WriteLine(command.Usage.TrimEnd());
            return Ok;
        }
        bool json = rest.Contains("--json");
        try
        {
            return command.Run(rest, stdout, stderr);
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

    static void PrintHelp(TextWriter w)
    {
        w.WriteLine("bpfjit: run eBPF SK_LOOKUP programs in .NET (verify, JIT-compile to IL, or interpret)");
        w.WriteLine();
        w.WriteLine("usage: bpfjit COMMAND [ARGS...]   ('bpfjit COMMAND --help' for details and examples)");
        w.WriteLine();
        foreach (var c in Commands.Where(c => !c.Hidden)) w.WriteLine($"  {c.Name,-12} {c.Summary}");
        w.WriteLine();
        w.WriteLine("every verb takes --json for a machine-readable result (shapes in docs/cli.md)");
        w.WriteLine("exit codes: 0 ok, 1 negative result (test failed, program rejected), 2 bad input or usage");
    }
}

/// <summary>A command line that does not fit its verb's usage.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A small argument reader shared by the verbs: positional arguments, flags and valued options.</summary>
public sealed class Args
{
    readonly List<string> _positional = [];
    readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="args"/>; <paramref name="valued"/> are options that take a value, <paramref name="flags"/> ones that do not.</summary>
    public Args(string[] args, IEnumerable<string> valued, IEnumerable<string> flags)
    {
        var takesValue = valued.ToHashSet(StringComparer.Ordinal);
        var isFlag = flags.ToHashSet(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                string name = a;
                string? value = null;
                int eq = a.IndexOf('=');
                if (eq > 0) { name = a[..eq]; value = a[(eq + 1)..]; }
                if (takesValue.Contains(name))
                {
                    if (value == null)
                    {
                        if (i + 1 >= args.Length) throw new UsageException($"option {name} needs a value");
                        value = args[++i];
                    }
                    _options[name] = value;
                }
                else if (isFlag.Contains(name) && value == null) _options[name] = null;
                else throw new UsageException($"unknown option '{a}'");
            }
            else _positional.Add(a);
        }
    }

    /// <summary>The positional arguments.</summary>
    public IReadOnlyList<string> Positional => _positional;

    /// <summary>True when a flag or option was given.</summary>
    public bool Has(string name) => _options.ContainsKey(name);

    /// <summary>An option's value, or <paramref name="fallback"/>.</summary>
    public string? Get(string name, string? fallback = null) => _options.TryGetValue(name, out var v) ? v : fallback;

    /// <summary>An option whose value must be one of <paramref name="choices"/>.</summary>
    public string Choice(string name, string fallback, params string[] choices)
    {
        string v = Get(name, fallback)!;
        if (!choices.Contains(v)) throw new UsageException($"{name} must be one of {string.Join(", ", choices)}, not '{v}'");
        return v;
    }
}
