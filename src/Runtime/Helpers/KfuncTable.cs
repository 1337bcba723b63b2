using BpfJit.Frontend;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>
/// The kernel functions (kfuncs) BpfJit runs, from Linux 6.18's common set (kernel/bpf/helpers.c): the RCU
/// read section markers and the open-coded numeric iterator. Each is a <see cref="Helper"/> both engines call
/// like a helper (the JIT as a direct static call). A kfunc call in code an engine runs carries BpfJit's id of
/// the function in its immediate, put there by <see cref="Bind"/> from the loader's name index (Linux puts the
/// function's vmlinux BTF id there); the ids start at <see cref="FirstId"/> so that an unbound index is refused.
/// </summary>
public static unsafe class KfuncTable
{
    /// <summary>The first id: larger than any index into a program's kfunc names.</summary>
    public const int FirstId = 0x10000;

    /// <summary>bpf_rcu_read_lock's id.</summary>
    public const int RcuReadLockId = FirstId;
    /// <summary>bpf_rcu_read_unlock's id.</summary>
    public const int RcuReadUnlockId = FirstId + 1;
    /// <summary>bpf_iter_num_new's id.</summary>
    public const int IterNumNewId = FirstId + 2;
    /// <summary>bpf_iter_num_next's id.</summary>
    public const int IterNumNextId = FirstId + 3;
    /// <summary>bpf_iter_num_destroy's id.</summary>
    public const int IterNumDestroyId = FirstId + 4;
    /// <summary>bpf_cast_to_kern_ctx's id.</summary>
    public const int CastToKernCtxId = FirstId + 5;

    /// <summary>The kernel's BPF_MAX_LOOPS: the most elements one numeric iterator may produce.</summary>
    public const long MaxLoops = 8 * 1024 * 1024;

    const ulong EInval = unchecked((ulong)-22L), E2Big = unchecked((ulong)-7L);

    static readonly Helper[] s_functions =
    [
        new(RcuReadLockId, "bpf_rcu_read_lock", RcuReadLock, new HelperProto(RetType.Void)),
        new(RcuReadUnlockId, "bpf_rcu_read_unlock", RcuReadUnlock, new HelperProto(RetType.Void)),
        // The iterator is 8 writable bytes aligned to 8 (struct bpf_iter_num on the stack): what the checking engines check
        // before the kfunc reads and writes it (the verifier checks it by name, Checker.Iterators.cs).
        new(IterNumNewId, "bpf_iter_num_new", IterNumNew, new HelperProto(RetType.Integer, ArgType.PtrToAlignedLong, ArgType.Anything, ArgType.Anything)),
        new(IterNumNextId, "bpf_iter_num_next", IterNumNext, new HelperProto(RetType.Integer, ArgType.PtrToAlignedLong)),
        new(IterNumDestroyId, "bpf_iter_num_destroy", IterNumDestroy, new HelperProto(RetType.Void, ArgType.PtrToAlignedLong)),
        new(CastToKernCtxId, "bpf_cast_to_kern_ctx", CastToKernCtx, new HelperProto(RetType.Integer, ArgType.PtrToCtx)),
    ];

    /// <summary>Every kfunc BpfJit runs.</summary>
    public static IReadOnlyList<Helper> All => s_functions;

    /// <summary>The kfunc with BpfJit id <paramref name="id"/>.</summary>
    public static bool TryGet(int id, out Helper function)
    {
        int i = id - FirstId;
        function = i >= 0 && i < s_functions.Length ? s_functions[i] : null!;
        return function != null;
    }

    /// <summary>The kfunc named <paramref name="name"/> (e.g. <c>bpf_iter_num_next</c>).</summary>
    public static bool TryGet(string name, out Helper function)
    {
        function = s_functions.FirstOrDefault(f => f.Name == name)!;
        return function != null;
    }

    /// <summary>
    /// Returns <paramref name="program"/> with each kfunc call's immediate, an index into
    /// <paramref name="names"/> (the loader's <c>ProgramSpec.KernelFunctions</c>), replaced by BpfJit's id of
    /// that function; throws <see cref="ProgramBindException"/> for a function BpfJit does not run.
    /// </summary>
    public static Instruction[] Bind(Instruction[] program, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(names);
        var code = (Instruction[])program.Clone();
        for (int i = 0; i < code.Length; i++)
        {
            var ins = code[i];
            if (ins.IsLdImm64) { i++; continue; }
            if (!ins.IsCall || ins.Src != (byte)CallKind.Kfunc) continue;
            if (ins.Imm < 0 || ins.Imm >= names.Count) throw new ProgramBindException(i, $"kfunc index {ins.Imm} is out of range ({names.Count} kernel functions)");
            if (!TryGet(names[ins.Imm], out var f)) throw new ProgramBindException(i, $"calling kernel function {names[ins.Imm]} is not supported by BpfJit");
            code[i] = ins with { Imm = f.Id };
        }
        return code;
    }

    // RCU read sections need nothing at run time: BpfJit frees no map element or socket while a program runs.

    /// <summary>bpf_rcu_read_lock: the verifier tracks the section; nothing to do at run time.</summary>
    public static ulong RcuReadLock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    /// <summary>bpf_rcu_read_unlock: the verifier tracks the section; nothing to do at run time.</summary>
    public static ulong RcuReadUnlock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    /// <summary>
    /// bpf_cast_to_kern_ctx(ctx): the kernel's context object, which Linux inlines as <c>r0 = r1</c>. BpfJit's context
    /// block is the only context object there is, so the result is the same address; the verifier lets no program
    /// read through it (BpfJit has no kernel BTF for <c>struct bpf_sk_lookup_kern</c>).
    /// </summary>
    public static ulong CastToKernCtx(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r1;

    // struct bpf_iter_num's 8 bytes hold the kernel's bpf_iter_num_kern { int cur; int end; }.

    /// <summary>bpf_iter_num_new(it, start, end): the range [start, end); -EINVAL when start &gt; end, -E2BIG past BPF_MAX_LOOPS.</summary>
    public static ulong IterNumNew(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        int* s = (int*)r1;
        int start = (int)r2, end = (int)r3;
        // An empty range (start == end) is valid: the first next() returns NULL.
        if (start > end) { s[0] = s[1] = 0; return EInval; }
        if ((long)end - start > MaxLoops) { s[0] = s[1] = 0; return E2Big; }
        // next() is called before the first element is read, so cur starts one before it.
        s[0] = start - 1;
        s[1] = end;
        return 0;
    }

    /// <summary>bpf_iter_num_next(it): a pointer to the next value (in the iterator), or NULL at the end.</summary>
    public static ulong IterNumNext(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        int* s = (int*)r1;
        if ((long)s[0] + 1 >= s[1]) { s[0] = s[1] = 0; return 0; }
        s[0]++;
        return (ulong)s;
    }

    /// <summary>bpf_iter_num_destroy(it): empties the iterator.</summary>
    public static ulong IterNumDestroy(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        int* s = (int*)r1;
        s[0] = s[1] = 0;
        return 0;
    }
}
