using BpfJit.Runtime;

namespace BpfJit.IlEmitter;

/// <summary>
/// The engines a host can choose by name, in one place: the reference interpreter and the JIT, plus the checking
/// engine each name stands for when a program runs unverified. The CLI's <c>--engine</c>, <c>bench</c>'s rows and
/// the conformance runner read this table; a new engine is a new entry here.
/// </summary>
public static class BpfEngines
{
    /// <summary>The interpreter's name (<see cref="InterpreterEngine"/>).</summary>
    public const string Interpreter = "interpreter";

    /// <summary>The JIT's name (<see cref="JitEngine"/>).</summary>
    public const string Jit = "jit";

    static readonly JitEngine s_checkedJit = new(new JitOptions { Checked = true });

    /// <summary>The engines by name, the interpreter first (bench's ratio is the first row's time over the second's).</summary>
    public static IReadOnlyDictionary<string, IBpfEngine> ByName { get; } = new Dictionary<string, IBpfEngine>(StringComparer.Ordinal)
    {
        [Interpreter] = InterpreterEngine.Instance,
        [Jit] = JitEngine.Instance,
    };

    /// <summary>The engine names, in <see cref="ByName"/>'s order.</summary>
    public static IReadOnlyList<string> Names { get; } = [Interpreter, Jit];

    /// <summary>The engine called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No engine has that name.</exception>
    public static IBpfEngine Get(string name) => ByName.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"no engine named '{name}' (engines: {string.Join(", ", Names)})");

    /// <summary>
    /// The engine to run an unverified program on for the name: one that checks every access so that a bad one
    /// faults instead of touching memory (the interpreter checks always; the JIT in checked mode).
    /// </summary>
    public static IBpfEngine Checking(string name) => name == Jit ? s_checkedJit : Get(name);
}
