using System.Reflection;
using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>The calling convention of every helper: r1-r5 in, r0 out.</summary>
public delegate ulong HelperFunction(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);

/// <summary>
/// One helper function: its id, its name, and its single implementation, a public static method
/// <c>ulong M(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)</c>. The JIT emits a direct
/// <c>call</c> to <see cref="Method"/>; the interpreter calls <see cref="Invoke"/>, a delegate over the same method.
/// </summary>
public sealed class Helper
{
    /// <summary>Creates a helper from a static method with the helper signature.</summary>
    public Helper(int id, string name, MethodInfo method, bool unwindOnZero = false)
    {
        ArgumentNullException.ThrowIfNull(method);
        var ps = method.GetParameters();
        if (!method.IsStatic || method.ReturnType != typeof(ulong) || ps.Length != 5 || ps.Any(p => p.ParameterType != typeof(ulong)))
            throw new ArgumentException($"helper {name}: {method.DeclaringType?.Name}.{method.Name} must be static ulong (ulong, ulong, ulong, ulong, ulong)", nameof(method));
        Id = id;
        Name = name;
        Method = method;
        UnwindOnZero = unwindOnZero;
        Invoke = method.CreateDelegate<HelperFunction>();
    }

    /// <summary>Creates a helper from a static method given as a delegate (a method group).</summary>
    public Helper(int id, string name, HelperFunction function, bool unwindOnZero = false)
        : this(id, name, function.Method, unwindOnZero) { }

    /// <summary>The helper id used by <c>call imm</c>.</summary>
    public int Id { get; }

    /// <summary>The helper's name, e.g. <c>bpf_sk_assign</c>.</summary>
    public string Name { get; }

    /// <summary>The static implementation method.</summary>
    public MethodInfo Method { get; }

    /// <summary>A delegate over <see cref="Method"/>.</summary>
    public HelperFunction Invoke { get; }

    /// <summary>
    /// uBPF's "unwind" semantics: when the helper returns 0 the program ends at once with r0 = 0.
    /// The bpf_conformance machine model needs it for helper 5.
    /// </summary>
    public bool UnwindOnZero { get; }
}

/// <summary>The helpers a program may call, by id. Both engines resolve calls through one table.</summary>
public sealed class HelperTable
{
    readonly Dictionary<int, Helper> _helpers = [];

    /// <summary>Adds (or replaces) a helper.</summary>
    public HelperTable Add(Helper helper)
    {
        ArgumentNullException.ThrowIfNull(helper);
        _helpers[helper.Id] = helper;
        return this;
    }

    /// <summary>Looks a helper up by id.</summary>
    public bool TryGet(int id, out Helper helper) => _helpers.TryGetValue(id, out helper!);

    /// <summary>All helpers in id order.</summary>
    public IEnumerable<Helper> All => _helpers.Values.OrderBy(h => h.Id);

    /// <summary>The machine model of the bpf_conformance suite: helper 5 is uBPF's unwind.</summary>
    public static HelperTable Conformance() => new HelperTable().Add(new Helper(5, "unwind", TestHelpers.Unwind, unwindOnZero: true));

    /// <summary>The model of <c>shared/bench</c>: conformance's helpers plus helper 2 returning r1 &amp; 1.</summary>
    public static HelperTable Bench() => Conformance().Add(new Helper(2, "bench_parity", TestHelpers.Parity));
}

/// <summary>Helpers of the conformance and benchmark machine models.</summary>
public static class TestHelpers
{
    /// <summary>uBPF's unwind helper: returns its first argument (the caller unwinds when it is 0).</summary>
    public static ulong Unwind(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r1;

    /// <summary>The benchmark helper: r1 &amp; 1.</summary>
    public static ulong Parity(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r1 & 1;
}
