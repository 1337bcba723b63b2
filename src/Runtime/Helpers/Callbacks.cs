using System.Runtime.CompilerServices;

namespace BpfJit.Runtime;

/// <summary>
/// A subprogram of a running program, callable by helpers (bpf_loop, bpf_for_each_map_elem): r1-r5 in,
/// r0 out, with a fresh stack frame of its own. Engines create one per BPF_PSEUDO_FUNC target.
/// </summary>
public delegate ulong BpfCallback(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);

/// <summary>
/// A program a PROG_ARRAY can hold: bpf_tail_call runs it with the caller's context and the caller
/// ends with its result. Any engine's prepared program can be wrapped with <see cref="TailCallTarget"/>.
/// </summary>
public interface ITailCallTarget
{
    /// <summary>Runs the program on <paramref name="ctx"/> (r1) and returns r0.</summary>
    ulong Run(ulong ctx);
}

/// <summary>An <see cref="ITailCallTarget"/> over an engine's <see cref="BpfEntry"/>.</summary>
public sealed class TailCallTarget(BpfEntry entry, string name = "") : ITailCallTarget
{
    /// <summary>The program's name, for diagnostics.</summary>
    public string Name { get; } = name;

    /// <inheritdoc />
    public ulong Run(ulong ctx) => entry(ctx, 0);

    /// <inheritdoc />
    public override string ToString() => Name.Length == 0 ? "tail call target" : Name;
}

/// <summary>
/// The runtime convention for BPF_PSEUDO_FUNC: an engine registers a <see cref="BpfCallback"/> per
/// callback subprogram and binds the ld_imm64 to the returned handle; helpers resolve the handle with
/// <see cref="FromHandle"/>. Handles are small tagged integers (programs can only pass them on, never
/// dereference them). The table holds callbacks weakly: an engine keeps its own strong references for as
/// long as its prepared program lives, and a slot is reused once its callback has been collected.
/// </summary>
public static class Callbacks
{
    /// <summary>The tag in the upper bits of every callback handle.</summary>
    public const ulong HandleTag = 0xBFC0_0000_0000_0000;

    static WeakReference<BpfCallback>?[] s_slots = new WeakReference<BpfCallback>?[64];
    static int s_used;
    static readonly Lock s_lock = new();

    /// <summary>Registers <paramref name="callback"/> and returns the handle a program holds for it.</summary>
    public static ulong Register(BpfCallback callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        lock (s_lock)
        {
            int index = -1;
            if (s_used == s_slots.Length)
            {
                for (int i = 0; i < s_slots.Length; i++)
                {
                    if (s_slots[i] is { } weak && !weak.TryGetTarget(out _)) { index = i; break; }
                }
                if (index < 0)
                {
                    var grown = new WeakReference<BpfCallback>?[s_slots.Length * 2];
                    s_slots.CopyTo(grown, 0);
                    Volatile.Write(ref s_slots, grown);
                }
            }
            if (index < 0) index = s_used++;
            Volatile.Write(ref s_slots[index], new WeakReference<BpfCallback>(callback));
            return HandleTag | (uint)index;
        }
    }

    /// <summary>The callback behind <paramref name="handle"/>; throws <see cref="BpfRuntimeException"/> for a bad or dead handle.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BpfCallback FromHandle(ulong handle)
    {
        ulong index = handle ^ HandleTag;
        var slots = Volatile.Read(ref s_slots);
        if (index < (ulong)slots.Length && slots[index] is { } weak && weak.TryGetTarget(out var callback)) return callback;
        throw new BpfRuntimeException(-1, $"0x{handle:x} is not a live callback handle");
    }
}
