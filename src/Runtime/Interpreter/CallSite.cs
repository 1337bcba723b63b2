using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>How a call site's arguments are checked on the interpreter's quick path (<see cref="CallSite.Shape"/>).</summary>
internal enum CallShape
{
    /// <summary>Anything else: the full path (<c>CallChecked</c>).</summary>
    General,
    /// <summary>No pointer argument, nothing released: a plain call (the stack block announced first where <see cref="CallSite.Announces"/>).</summary>
    Plain,
    /// <summary>(const map, key, scalars): bpf_map_lookup_elem, bpf_map_delete_elem.</summary>
    MapKey,
    /// <summary>(ctx, socket or NULL, scalars): bpf_sk_assign.</summary>
    CtxSocket,
    /// <summary>(socket): bpf_sk_release.</summary>
    Socket,
}

/// <summary>
/// The map a call site passed last, with what a call needs of it, read as one reference (the site's hint is written
/// racily by any thread: one object, so its fields always belong together).
/// </summary>
internal sealed class MapHint(BpfMap map)
{
    /// <summary>The map.</summary>
    public readonly BpfMap Map = map;

    /// <summary>The map's key size.</summary>
    public readonly int KeySize = map.KeySize;

    /// <summary>The bytes a non-NULL lookup result may be touched for: a socket view for SOCKMAP/SOCKHASH, else the value.</summary>
    public readonly int ResultBytes = map.Type is MapType.SockMap or MapType.SockHash ? Sockets.BpfSockLayout.ViewSize : map.ValueSize;

    /// <summary>The map holds sockets: a lookup's result is a socket view.</summary>
    public readonly bool HoldsSockets = map.Type is MapType.SockMap or MapType.SockHash;
}

/// <summary>A `call imm` slot of the interpreter's program: the helper and how a call of it is checked, fixed when the program is prepared.</summary>
internal sealed unsafe class CallSite(Helper helper, int plan, int slot)
{
    /// <summary>The call's slot in the program.</summary>
    public readonly int Slot = slot;

    /// <summary>The helper the slot calls.</summary>
    public readonly Helper Helper = helper;

    /// <summary>The helper's method, called directly on the quick path (null: a method without a handle; the site is then <see cref="CallShape.General"/>).</summary>
    public readonly delegate*<ulong, ulong, ulong, ulong, ulong, ulong> Function = FunctionOf(helper);

    /// <summary>The helper can end the program (<see cref="HelperExit"/>).</summary>
    public readonly bool Exits = helper.Exit != HelperExit.None;

    /// <summary>How the helper's pointer arguments are checked quickly (<see cref="HelperPlan"/>).</summary>
    public readonly int Plan = plan;

    /// <summary>The helper submits or discards a ring-buffer record: the run's cache forgets what it knew.</summary>
    public readonly bool ReleasesMemory = HelperArguments.ReleasesMemory(helper);

    /// <summary>The verifier types the helper's result as a pointer (a map value, a record): a non-NULL one becomes a region.</summary>
    public readonly bool ReturnsPointer = helper.Proto.Ret is RetType.PtrToMapValueOrNull or RetType.PtrToRingbufMemOrNull;

    /// <summary>
    /// Nothing to check or remember: no pointer argument (so no map either, which a pointer result needs), no record released.
    /// </summary>
    public readonly bool Plain = plan == HelperPlan.Nothing && !HelperArguments.ReleasesMemory(helper);

    /// <summary>
    /// The run's stack block must be announced to the registry (MemoryRegions.EnterStack) before the call: the helper
    /// may look for memory there itself (a prototype that says nothing, bpf_trace_printk's extra arguments) or run a
    /// callback, which finds its caller's stack there. Any other helper's arguments are checked by the interpreter,
    /// which announces the block before a check that asks the registry.
    /// </summary>
    public readonly bool Announces = ReferenceEquals(helper.Proto, HelperProto.Unknown) || helper.Proto.Variadic
        || Array.IndexOf(helper.Proto.Args, ArgType.PtrToFunc) >= 0;

    /// <summary>How the quick path checks the call's arguments.</summary>
    public CallShape Shape => _shape;

    readonly CallShape _shape = ShapeOf(helper, plan);

    /// <summary>The map the call here passed last (a racy hint: its check then skips the registry).</summary>
    public MapHint? Hint;

    static CallShape ShapeOf(Helper helper, int plan)
    {
        if (FunctionOf(helper) == null || HelperArguments.ReleasesMemory(helper)) return CallShape.General;
        // Plain announces the stack block first where the helper needs it (Announces); the checking shapes do not.
        if (plan == HelperPlan.Nothing) return CallShape.Plain;
        bool announces = ReferenceEquals(helper.Proto, HelperProto.Unknown) || helper.Proto.Variadic
            || Array.IndexOf(helper.Proto.Args, ArgType.PtrToFunc) >= 0;
        if (announces) return CallShape.General;
        if (plan == HelperPlan.MapKey && helper.Proto.Ret is RetType.PtrToMapValueOrNull or RetType.Integer) return CallShape.MapKey;
        if (plan == HelperPlan.CtxSocketOrNull) return CallShape.CtxSocket;
        if (plan == HelperPlan.OneSocket) return CallShape.Socket;
        return CallShape.General;
    }

    static delegate*<ulong, ulong, ulong, ulong, ulong, ulong> FunctionOf(Helper helper)
    {
        try
        {
            return (delegate*<ulong, ulong, ulong, ulong, ulong, ulong>)helper.Method.MethodHandle.GetFunctionPointer();
        }
        catch (InvalidOperationException)
        {
            return null;   // a DynamicMethod has no handle: the delegate, on the full path
        }
    }
}
