using BpfJit.Frontend;
using System.Reflection;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.IlEmitter;

/// <summary>
/// The object a compiled program's delegate is closed over (its IL's argument 0). It holds what the
/// code needs at run time besides registers and stack: the helper table for <c>callx</c>, whose
/// target is known only at run time, and the maps of map-specialised calls. Public because the IL that refers to it is
/// also saved as a standalone assembly (<c>bpfjit dump --dll</c>); programs do not use it directly.
/// </summary>
public sealed class JitClosure
{
    readonly HelperTable _helpers;

    /// <summary>Creates the closure of a program compiled against <paramref name="helpers"/>.</summary>
    public JitClosure(HelperTable helpers)
    {
        ArgumentNullException.ThrowIfNull(helpers);
        _helpers = helpers;
    }

    /// <summary>
    /// Callback methods of BPF_PSEUDO_FUNC targets the program holds handles to: the <see cref="Callbacks"/>
    /// table holds them weakly, so the closure (and with it the program's delegate) keeps them alive.
    /// </summary>
    internal List<object> KeepAlive { get; } = [];

    /// <summary>The program, for checked mode's error messages (null unless compiled with <see cref="JitOptions.Checked"/>).</summary>
    public Instruction[]? CheckedProgram { get; internal set; }

    /// <summary>The program's slots as compiled, for the messages of faults raised by runtime guards.</summary>
    public Instruction[]? Program { get; internal set; }

    /// <summary>A guarded division or modulo found its divisor zero, which the verifier's facts had ruled out.</summary>
    public void ThrowDivisionByZero(int index, bool modulo) => throw Runtime.Checked.BpfFaultException.DivisionByZero(Program, index, modulo);

    /// <summary>
    /// Checked mode, before a helper call: the pointer arguments of helper <paramref name="id"/> must be what its
    /// prototype says (<c>HelperArguments.Check</c>).
    /// </summary>
    public void CheckHelperArguments(int id, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ulong ctx, int index)
    {
        // The stack block of a checked method is registered (MemoryRegions.EnterStack): no fast path needed here.
        // A kfunc's id (KfuncTable.FirstId on) is no helper's.
        if (_helpers.TryGet(id, out var h) || KfuncTable.TryGet(id, out h)) Runtime.Checked.HelperArguments.Check(h, r1, r2, r3, r4, r5, ctx, 0, 0, Program, index);
    }
    /// <summary>How many maps a specialised program can reach through the closure's fields.</summary>
    public const int MaxMaps = 4;

    // The maps of map-specialised helper calls (HASH, LPM_TRIE, SOCKMAP, SOCKHASH lookups), known at
    // compile time: the emitted code loads one field and calls the map type's method on it, with no
    // handle resolution, table or virtual call. Fields rather than an array: one load, no bounds check.

    /// <summary>The first map a specialised call reaches (see <see cref="MaxMaps"/>).</summary>
    public BpfMap? Map0;
    /// <summary>The second map a specialised call reaches.</summary>
    public BpfMap? Map1;
    /// <summary>The third map a specialised call reaches.</summary>
    public BpfMap? Map2;
    /// <summary>The fourth map a specialised call reaches.</summary>
    public BpfMap? Map3;

    /// <summary>The fields <c>Map0</c>..<c>Map3</c>, by index.</summary>
    internal static readonly FieldInfo[] MapFields = FindMapFields();

    // A loop, not Enumerable.Range(...).Select: LINQ here is framework code RyuJIT compiles in every
    // process's first compile (docs/perf.md, "Cold start").
    static FieldInfo[] FindMapFields()
    {
        var fields = new FieldInfo[MaxMaps];
        for (int i = 0; i < MaxMaps; i++)
            fields[i] = typeof(JitClosure).GetField("Map" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))!;
        return fields;
    }

    /// <summary>Stores <paramref name="maps"/> in the map fields, in order.</summary>
    internal void BindMaps(IReadOnlyList<BpfMap> maps)
    {
        for (int i = 0; i < maps.Count; i++) MapFields[i].SetValue(this, maps[i]);
    }

    /// <summary>The helper table <c>callx</c> looks helpers up in.</summary>
    public HelperTable Helpers => _helpers;

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

    /// <summary>Raises the interpreter's error for a bpf-to-bpf call past <see cref="BpfAbi.MaxCallFrames"/> frames.</summary>
    public static void ThrowCallStackOverflow(int index) =>
        throw new BpfRuntimeException(index, $"call stack overflow: more than {BpfAbi.MaxCallFrames} frames");
}
