namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>bpfjit completion bash|zsh</c>: prints a script that makes the shell complete bpfjit's verbs, options and
/// option values. The script asks the tool itself through System.CommandLine's <c>[suggest:N]</c> directive, so
/// the completions always match the installed version; where it suggests nothing (a file operand) the shell
/// completes file names.
/// </summary>
public static class CompletionCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("completion", "print the shell completion script (bash or zsh)", """
        usage: bpfjit completion bash|zsh

        Prints a script to source that completes bpfjit's verbs, options and option values (--engine,
        --proto, --log, ...) in the shell, and file names where a verb reads a file. The script asks
        bpfjit itself: 'bpfjit [suggest:N] "LINE"' prints the completions of LINE at cursor position N,
        one a line (System.CommandLine's suggest directive; dotnet-suggest uses the same).
          bash: source <(bpfjit completion bash)     (or save it in /etc/bash_completion.d/bpfjit)
          zsh:  source <(bpfjit completion zsh)      (after compinit)
        Exit code 0, or 2 for a shell it has no script for.

        examples:
          bpfjit completion bash > /tmp/bpfjit-completion.bash
          bpfjit '[suggest:13]' 'bpfjit verify --'
        """, Run)
    {
        Operands = "SHELL",
    };

    /// <summary>The bash script: the line up to the cursor, with the command's own name taken off, goes to [suggest].</summary>
    public const string Bash = """
        # bpfjit shell completion for bash ('bpfjit completion bash'); asks 'bpfjit [suggest:N] LINE'.
        _bpfjit_complete()
        {
            local IFS=$'\n' line="${COMP_LINE:0:COMP_POINT}"
            line="${line#*[[:space:]]}"
            local suggestions
            suggestions=$(bpfjit "[suggest:${#line}]" "$line" 2>/dev/null)
            COMPREPLY=($(compgen -W "$suggestions" -- "${COMP_WORDS[COMP_CWORD]}"))
            # Nothing to suggest (an operand): the verbs read files.
            if [ ${#COMPREPLY[@]} -eq 0 ]; then COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}")); fi
        }
        complete -o filenames -F _bpfjit_complete bpfjit
        """;

    /// <summary>The zsh script, the same protocol.</summary>
    public const string Zsh = """
        #compdef bpfjit
        # bpfjit shell completion for zsh ('bpfjit completion zsh'); asks 'bpfjit [suggest:N] LINE'.
        _bpfjit() {
            local line="${BUFFER[1,CURSOR]}"
            line="${line#*[[:space:]]}"
            local -a suggestions
            suggestions=("${(@f)$(bpfjit "[suggest:${#line}]" "$line" 2>/dev/null)}")
            suggestions=(${suggestions:#})
            if (( ${#suggestions} )); then compadd -a suggestions; else _files; fi
        }
        compdef _bpfjit bpfjit
        """;

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no SHELL given (bash or zsh)" : "give exactly one SHELL");
        string script = args.Positional[0] switch
        {
            "bash" => Bash,
            "zsh" => Zsh,
            var other => throw new UsageException($"no completion script for '{other}' (bash or zsh)"),
        };
        stdout.WriteLine(script);
        return Cli.Ok;
    }
}
