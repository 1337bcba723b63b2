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
        : this(id, name, method, HelperProto.Unknown, unwindOnZero ? HelperExit.UnwindOnZero : HelperExit.None) { }

    /// <summary>Creates a helper from a static method given as a delegate (a method group).</summary>
    public Helper(int id, string name, HelperFunction function, bool unwindOnZero = false)
        : this(id, name, function, HelperProto.Unknown, unwindOnZero ? HelperExit.UnwindOnZero : HelperExit.None) { }

    /// <summary>Creates a helper with its prototype (what the verifier checks) and its control effect.</summary>
    public Helper(int id, string name, HelperFunction function, HelperProto proto, HelperExit exit = HelperExit.None)
        : this(id, name, OfStatic(function, name), null, proto, exit) { }

    /// <summary>Creates a helper with its prototype (what the verifier checks) and its control effect.</summary>
    public Helper(int id, string name, MethodInfo method, HelperProto proto, HelperExit exit)
        : this(id, name, OfStatic(method, name).CreateDelegate<HelperFunction>(), method, proto, exit) { }

    Helper(int id, string name, HelperFunction invoke, MethodInfo? method, HelperProto proto, HelperExit exit)
    {
        ArgumentNullException.ThrowIfNull(proto);
        if (proto.Args.Length > 5) throw new ArgumentException($"helper {name}: at most 5 arguments", nameof(proto));
        Id = id;
        Name = name;
        Invoke = invoke;
        _method = method;
        Proto = proto;
        Exit = exit;
    }

    // The delegate's type fixes the signature, and an open delegate (no target) is over a static method: nothing asks
    // reflection. The kernel helper table is built at a process's first program, and a MethodInfo and its parameters per
    // helper cost about 3 ms of that cold start (docs/perf.md, "Cold start"); Method is made when an engine asks for it.
    static HelperFunction OfStatic(HelperFunction function, string name)
    {
        ArgumentNullException.ThrowIfNull(function);
        return function.Target == null ? function : throw NotStatic(name, function.Method);
    }

    static MethodInfo OfStatic(MethodInfo method, string name)
    {
        ArgumentNullException.ThrowIfNull(method);
        var ps = method.GetParameters();
        return method.IsStatic && method.ReturnType == typeof(ulong) && ps.Length == 5 && ps.All(p => p.ParameterType == typeof(ulong))
            ? method : throw NotStatic(name, method);
    }

    static ArgumentException NotStatic(string name, MethodInfo method) =>
        new($"helper {name}: {method.DeclaringType?.Name}.{method.Name} must be static ulong (ulong, ulong, ulong, ulong, ulong)", "method");

    MethodInfo? _method;

    /// <summary>The helper id used by <c>call imm</c>.</summary>
    public int Id { get; }

    /// <summary>The helper's name, e.g. <c>bpf_sk_assign</c>.</summary>
    public string Name { get; }

    /// <summary>The static implementation method.</summary>
    public MethodInfo Method => _method ??= Invoke.Method;

    /// <summary>A delegate over <see cref="Method"/>.</summary>
    public HelperFunction Invoke { get; }

    /// <summary>The argument and return types the verifier checks a call against.</summary>
    public HelperProto Proto { get; }

    /// <summary>How a call to this helper can end the program early (both engines honour it).</summary>
    public HelperExit Exit { get; }

    /// <summary>
    /// uBPF's "unwind" semantics: when the helper returns 0 the program ends at once with r0 = 0.
    /// The bpf_conformance machine model needs it for helper 5.
    /// </summary>
    public bool UnwindOnZero => Exit == HelperExit.UnwindOnZero;
}

/// <summary>How a helper call can end the whole program (every frame) early.</summary>
public enum HelperExit
{
    /// <summary>The call returns normally.</summary>
    None,
    /// <summary>uBPF's unwind: a return value of 0 ends the program with r0 = 0.</summary>
    UnwindOnZero,
    /// <summary>
    /// bpf_tail_call: a return value of 0 means the tail call ran; the program ends with r0 =
    /// <see cref="TailCallState.TakeResult"/>. A non-zero return means it fell through.
    /// </summary>
    TailCall,
}

/// <summary>Per-thread state of a tail call chain: the result of the program that was tail-called, and the chain length.</summary>
public static class TailCallState
{
    [ThreadStatic] static ulong t_result;
    [ThreadStatic] static int t_depth;

    /// <summary>The kernel's limit on a tail call chain (MAX_TAIL_CALL_CNT).</summary>
    public const int MaxChain = 33;

    /// <summary>Records the result of a tail-called program (called by the tail_call helper).</summary>
    public static void SetResult(ulong r0) => t_result = r0;

    /// <summary>The recorded result (engines call this when a <see cref="HelperExit.TailCall"/> helper returned 0).</summary>
    public static ulong TakeResult() => t_result;

    /// <summary>The number of tail calls taken in the current chain on this thread.</summary>
    public static int Depth
    {
        get => t_depth;
        set => t_depth = value;
    }
}

/// <summary>The kernel's helper argument types (enum bpf_arg_type), as far as BpfJit's helpers need them.</summary>
public enum ArgType
{
    /// <summary>Unused argument.</summary>
    DontCare,
    /// <summary>Any scalar value.</summary>
    Anything,
    /// <summary>A map pointer from ld_imm64.</summary>
    ConstMapPtr,
    /// <summary>Pointer to key_size readable bytes.</summary>
    PtrToMapKey,
    /// <summary>Pointer to value_size readable bytes.</summary>
    PtrToMapValue,
    /// <summary>Pointer to value_size writable bytes.</summary>
    PtrToUninitMapValue,
    /// <summary>Pointer to readable memory whose size is the next argument.</summary>
    PtrToMem,
    /// <summary>Pointer to readable memory or NULL.</summary>
    PtrToMemOrNull,
    /// <summary>Pointer to writable memory whose size is the next argument.</summary>
    PtrToUninitMem,
    /// <summary>A constant size, greater than zero.</summary>
    ConstSize,
    /// <summary>A constant size, possibly zero.</summary>
    ConstSizeOrZero,
    /// <summary>A constant allocation size, possibly zero (ringbuf_reserve).</summary>
    ConstAllocSizeOrZero,
    /// <summary>The program's context pointer.</summary>
    PtrToCtx,
    /// <summary>A socket pointer or NULL (sk_assign).</summary>
    PtrToSocketOrNull,
    /// <summary>A referenced socket (sk_release).</summary>
    PtrToSocket,
    /// <summary>A pointer to a bpf_spin_lock inside a map value.</summary>
    PtrToSpinLock,
    /// <summary>A pointer to a callback function (ld_imm64 with BPF_PSEUDO_FUNC).</summary>
    PtrToFunc,
    /// <summary>A stack pointer or NULL (callback context).</summary>
    PtrToStackOrNull,
    /// <summary>Memory returned by ringbuf_reserve.</summary>
    PtrToRingbufMem,
    /// <summary>A constant string in a read-only map (bpf_snprintf format).</summary>
    PtrToConstStr,
    /// <summary>
    /// Eight writable bytes aligned to 8 (ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED with
    /// arg_size 8): bpf_strtol's and bpf_strtoul's result.
    /// </summary>
    PtrToAlignedLong,
    /// <summary>
    /// A socket of any kind, or NULL (ARG_PTR_TO_BTF_ID_SOCK_COMMON | PTR_MAYBE_NULL): bpf_get_socket_cookie on a
    /// socket pointer (SK_REUSEPORT's <c>sk</c> and <c>migrating_sk</c>).
    /// </summary>
    PtrToSockCommonOrNull,
    /// <summary>A pointer to the <c>struct bpf_timer</c> inside a map value (ARG_PTR_TO_TIMER).</summary>
    PtrToTimer,
    /// <summary>An initialised dynptr the helper does not change (ARG_PTR_TO_DYNPTR | MEM_RDONLY).</summary>
    PtrToDynptr,
    /// <summary>
    /// Pointer to memory the helper writes, whose size is the next argument, or NULL (ARG_PTR_TO_MEM_OR_NULL | MEM_WRITE:
    /// bpf_snprintf's output buffer).
    /// </summary>
    PtrToWritableMemOrNull,
    /// <summary>A stack slot pair the helper makes a LOCAL dynptr in (ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_LOCAL | MEM_UNINIT): bpf_dynptr_from_mem.</summary>
    PtrToUninitLocalDynptr,
    /// <summary>
    /// A stack slot pair the helper makes a RINGBUF dynptr in (ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | MEM_UNINIT): bpf_ringbuf_reserve_dynptr;
    /// the dynptr is a reference the program must release, even when the reservation failed.
    /// </summary>
    PtrToUninitRingbufDynptr,
    /// <summary>A RINGBUF dynptr the helper releases (ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | OBJ_RELEASE): bpf_ringbuf_submit/discard_dynptr.</summary>
    PtrToRingbufDynptrRelease,
    /// <summary>
    /// A socket of any kind, never NULL (ARG_PTR_TO_BTF_ID_SOCK_COMMON): a <c>bpf_sock</c>, a <c>sock_common</c>, or a
    /// kernel BTF pointer to a structure that begins with <c>struct sock_common</c> (the bpf_skc_to_* casts).
    /// </summary>
    PtrToBtfIdSockCommon,
    /// <summary>
    /// A kernel BTF pointer to the structure <see cref="HelperProto.ArgBtf"/> names, never NULL (ARG_PTR_TO_BTF_ID):
    /// a <c>task_struct</c> for bpf_get_task_stack, bpf_task_pt_regs and bpf_find_vma.
    /// </summary>
    PtrToBtfId,
    /// <summary>
    /// A per-CPU kernel variable (ARG_PTR_TO_PERCPU_BTF_ID): a typed <c>.ksyms</c> extern of a per-CPU variable, or a per-CPU
    /// kptr. BpfJit refuses typed ksyms at load, so no register of a program it verifies is one.
    /// </summary>
    PtrToPercpuBtfId,
    /// <summary>
    /// A kernel BTF pointer to the structure <see cref="HelperProto.ArgBtf"/> names, or NULL (ARG_PTR_TO_BTF_ID_OR_NULL):
    /// the owner of a local-storage helper (a <c>task_struct</c>, a <c>cgroup</c>).
    /// </summary>
    PtrToBtfIdOrNull,
    /// <summary>Pointer to value_size readable bytes, or NULL (ARG_PTR_TO_MAP_VALUE_OR_NULL): a storage_get helper's initial value.</summary>
    PtrToMapValueOrNull,
    /// <summary>
    /// The kptr field bpf_kptr_xchg exchanges (ARG_KPTR_XCHG_DEST): a map value pointer at the constant offset of a
    /// referenced kptr (<c>__kptr</c>) of the map's value.
    /// </summary>
    KptrXchgDest,
    /// <summary>
    /// What bpf_kptr_xchg stores (ARG_PTR_TO_BTF_ID_OR_NULL | OBJ_RELEASE, its BTF type the field's): a referenced pointer to
    /// the field's struct, whose reference the field takes, or NULL.
    /// </summary>
    PtrToKptrOrNullRelease,
}

/// <summary>The kernel's helper return types (enum bpf_return_type), as far as BpfJit's helpers need them.</summary>
public enum RetType
{
    /// <summary>A scalar.</summary>
    Integer,
    /// <summary>Nothing (r0 is unreadable afterwards).</summary>
    Void,
    /// <summary>A pointer to a map value, or NULL.</summary>
    PtrToMapValueOrNull,
    /// <summary>A referenced socket, or NULL.</summary>
    PtrToSocketOrNull,
    /// <summary>Ring buffer memory of the requested size, or NULL.</summary>
    PtrToRingbufMemOrNull,
    /// <summary>A trusted pointer to the current <c>struct task_struct</c> (RET_PTR_TO_BTF_ID), never NULL.</summary>
    TrustedPtrToTask,
    /// <summary>Memory of the call's constant size inside a dynptr's data, or NULL (RET_PTR_TO_DYNPTR_MEM_OR_NULL).</summary>
    PtrToDynptrMemOrNull,
    /// <summary>An untrusted kernel BTF pointer to <see cref="HelperProto.RetBtf"/>, or NULL (RET_PTR_TO_BTF_ID_OR_NULL).</summary>
    PtrToBtfIdOrNull,
    /// <summary>An untrusted kernel BTF pointer to <see cref="HelperProto.RetBtf"/> (RET_PTR_TO_BTF_ID).</summary>
    PtrToBtfId,
    /// <summary>
    /// bpf_kptr_xchg's result (RET_PTR_TO_BTF_ID_OR_NULL, its type the exchanged kptr field's): the field's old pointer or
    /// NULL, a reference the program acquires and must release.
    /// </summary>
    KptrXchgOld,
}

/// <summary>A helper's prototype: up to five argument types and a return type, as the verifier reads them.</summary>
public sealed record HelperProto(RetType Ret, params ArgType[] Args)
{
    /// <summary>A prototype that says nothing: five scalar arguments, a scalar result (test helpers).</summary>
    public static HelperProto Unknown { get; } =
        new(RetType.Integer, ArgType.Anything, ArgType.Anything, ArgType.Anything, ArgType.Anything, ArgType.Anything);

    /// <summary>
    /// True for a helper that also reads registers past its typed arguments, unchecked by any verifier
    /// (bpf_trace_printk's r3-r5): engines pass it all five, and the helper follows pointers among them only
    /// where <see cref="Checked.MemoryRegions.Contains"/> vouches for them.
    /// </summary>
    public bool Variadic { get; init; }

    /// <summary>
    /// The largest value an <see cref="RetType.Integer"/> result can take, when the implementation guarantees one
    /// the verifier may rely on (the kernel's <c>do_refine_retval_range</c>: bpf_get_smp_processor_id is below
    /// nr_cpu_ids); null for none. The result is then in [0, RetUmax].
    /// </summary>
    public ulong? RetUmax { get; init; }

    /// <summary>
    /// True when an <see cref="RetType.Integer"/> result is a negated errno or at most the largest value of the
    /// call's size argument (the kernel's <c>do_refine_retval_range</c> for bpf_get_stack and the probe_read_*_str
    /// helpers: the number of bytes written).
    /// </summary>
    public bool RetBoundedBySize { get; init; }

    /// <summary>
    /// True for a helper that may sleep (the kernel's <c>might_sleep</c>: bpf_copy_from_user, bpf_copy_from_user_task):
    /// the verifier refuses it in a program that is not sleepable, as SK_LOOKUP programs are not.
    /// </summary>
    public bool MightSleep { get; init; }

    /// <summary>The kernel structure (its C name) a <see cref="RetType.PtrToBtfId"/> or <see cref="RetType.PtrToBtfIdOrNull"/> result points to (the prototype's ret_btf_id).</summary>
    public string? RetBtf { get; init; }

    /// <summary>The kernel structure (its C name) an <see cref="ArgType.PtrToBtfId"/> argument must point to (the prototype's arg_btf_id).</summary>
    public string? ArgBtf { get; init; }

    /// <summary>
    /// True for the kernel's pointer casts (is_ptr_cast_function: bpf_skc_to_*): the result is the argument's object seen as
    /// another type, so it keeps the argument's reference (ref_obj_id) and dies with it.
    /// </summary>
    public bool PtrCast { get; init; }

    /// <summary>True when the helper acquires a reference that must be released (returns a socket).</summary>
    public bool AcquiresReference => Ret == RetType.PtrToSocketOrNull || Ret == RetType.PtrToRingbufMemOrNull;
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
