using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter;

/// <summary>
/// The object a compiled program's delegate is closed over (its IL's argument 0). It holds what the
/// code needs at run time besides registers and stack: the helper table for <c>callx</c>, whose
/// target is known only at run time, and the probe flag. Public because the IL that refers to it is
/// also saved as a standalone assembly (<c>bpfjit dump --dll</c>); programs do not use it directly.
/// </summary>
public sealed class JitClosure
{
    readonly HelperTable _helpers;

    /// <summary>Creates the closure of a program compiled against <paramref name="helpers"/>.</summary>
    public JitClosure(HelperTable helpers, bool probe = false)
    {
        ArgumentNullException.ThrowIfNull(helpers);
        _helpers = helpers;
        IsProbe = probe;
    }

    /// <summary>
    /// Callback methods of BPF_PSEUDO_FUNC targets the program holds handles to: the <see cref="Callbacks"/>
    /// table holds them weakly, so the closure (and with it the program's delegate) keeps them alive.
    /// </summary>
    internal List<object> KeepAlive { get; } = [];

    /// <summary>The program, for checked mode's error messages (null unless compiled with <see cref="JitOptions.Checked"/>).</summary>
    public Instruction[]? CheckedProgram { get; internal set; }

    /// <summary>The helper table <c>callx</c> looks helpers up in.</summary>
    public HelperTable Helpers => _helpers;

    /// <summary>
    /// True for the closure used once at compile time: the method returns 0 at once. A field, not a
    /// property, so the emitted test is one load (RyuJIT does not inline a getter into a DynamicMethod).
    /// </summary>
    public readonly bool IsProbe;

    /// <summary>
    /// <c>callx</c>: calls the helper whose id is <paramref name="id"/> (a register value) with
    /// r1..r5, as the interpreter does. Sets <paramref name="stop"/> when the helper's
    /// <see cref="HelperExit"/> ends the whole program; the return value is then the program's r0.
    /// </summary>
    public ulong CallX(ulong id, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, int index, out bool stop)
    {
        if (!_helpers.TryGet((int)id, out var h) || id > int.MaxValue)
            throw new BpfRuntimeException(index, $"callx to unknown helper {id}");
        ulong r0 = h.Invoke(r1, r2, r3, r4, r5);
        stop = h.Exit != HelperExit.None && r0 == 0;
        if (stop && h.Exit == HelperExit.TailCall) return TailCallState.TakeResult();
        return r0;
    }

    /// <summary>Raises the interpreter's error for a bpf-to-bpf call past <see cref="Interpreter.MaxFrames"/> frames.</summary>
    public static void ThrowCallStackOverflow(int index) =>
        throw new BpfRuntimeException(index, $"call stack overflow: more than {Interpreter.MaxFrames} frames");
}
