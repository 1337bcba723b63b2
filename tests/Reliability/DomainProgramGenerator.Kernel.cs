using KernelBtf = BpfJit.Frontend.Btf.KernelBtf;
using BpfJit.Frontend.Btf;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// The templates of issue 19's objects: reads of kernel structs through <c>bpf_get_current_task_btf</c> and
/// <c>bpf_cast_to_kern_ctx</c> (at field offsets, inside fields, across them, past the end, negative, stores),
/// task and cgroup local storage get/delete with good and bad arguments, <c>bpf_current_task_under_cgroup</c>,
/// and LOCAL dynptrs over a map value (or the stack, which Linux refuses) with their slices, reads and writes, used after the dynptr
/// is destroyed. The key instruction of each carries a <c># F:name</c> comment (<see cref="Features"/>), so the
/// fuzzer can count per kind how many programs reached it and agreed with the kernel.
/// </summary>
public sealed partial class DomainProgramGenerator
{
    /// <summary>Map indexes of the local-storage and cgroup-array maps (<see cref="Maps"/>).</summary>
    internal const int TaskStorage = 4, CgrpStorage = 5, CgroupArray = 6;

    /// <summary>Size of the local-storage maps' values.</summary>
    const int StorageValueSize = 16;

    /// <summary>Stack slots of these templates, below the zeroed 64 bytes and the lookup key at -68.</summary>
    const int DynptrSlot = 88, InitBuffer = 112, CtxSlot = 120, SliceSlot = 128;

    /// <summary>The kinds of kernel-object use the fuzzer counts (<c># F:</c> tags).</summary>
    public static readonly string[] Features =
        ["task_btf", "task_btf_load", "task_btf_ptr_load", "task_storage_get", "task_storage_delete", "cgrp_storage_get",
         "cgrp_storage_delete", "task_under_cgroup", "dynptr_from_mem", "dynptr_slice", "dynptr_read_write", "dynptr_invalidated", "kern_ctx_load"];

    /// <summary>The kernel function the <c>kcall</c> lines name (index 0: a kfunc call's immediate).</summary>
    public static readonly string[] KernelFunctionNames = ["bpf_cast_to_kern_ctx"];

    /// <summary>A struct's members as (offset, size, points to a struct) in the bundled kernel BTF, anonymous members flattened.</summary>
    sealed record Field(int Offset, int Size, bool Pointer);

    static readonly Lazy<(Field[] Fields, int Size)> s_task = new(() => Fields("task_struct"));
    static readonly Lazy<(Field[] Fields, int Size)> s_kernCtx = new(() => Fields("bpf_sk_lookup_kern"));

    static (Field[] Fields, int Size) Fields(string name)
    {
        var spec = KernelBtf.Spec;
        var list = new List<Field>();
        void Walk(uint id, int at)
        {
            foreach (var m in spec.Resolve(id).Members)
            {
                if (m.BitfieldSize != 0 || m.BitOffset % 8 != 0) continue;
                int off = at + (int)(m.BitOffset / 8);
                var t = spec.Resolve(m.TypeId);
                if (m.Name.Length == 0 && t.Kind is BtfKind.Struct or BtfKind.Union) { Walk(m.TypeId, off); continue; }
                bool ptr = t.Kind == BtfKind.Ptr && spec.Resolve(t.SizeOrType).Kind is BtfKind.Struct or BtfKind.Union;
                list.Add(new Field(off, (int)spec.Size(m.TypeId), ptr));
            }
        }
        uint sid = KernelBtf.StructId(name);
        Walk(sid, 0);
        return ([.. list], KernelBtf.Size(name));
    }

    /// <summary>One kernel-object template (main function only: they use the stack below the zeroed area).</summary>
    void KernelObject()
    {
        if (_inCallee) { PrecisionJoin(); return; }
        switch (_rng.Next(9))
        {
            case 0 or 1: TaskBtf(); break;
            case 2 or 3: TaskStorageCall(); break;
            case 4: CgroupCalls(); break;
            case 5 or 6: Dynptr(); break;
            default: KernCtx(); break;
        }
    }

    /// <summary>A load of <paramref name="width"/> bytes at an offset of <paramref name="fields"/>: a field's start, inside or across one, or outside the struct.</summary>
    (int Offset, int Width) FieldAccess((Field[] Fields, int Size) s)
    {
        var f = s.Fields[_rng.Next(s.Fields.Length)];
        int w = Pick(0, 1, 2, 2, 3, 3);
        int width = s_widthBytes[w];
        int off = _rng.Next(12) switch
        {
            0 => f.Offset + _rng.Next(1, Math.Max(2, f.Size)),      // inside a field, maybe misaligned
            1 => f.Offset + f.Size - Pick(1, 2, 4),                  // across its end
            2 => Pick(-8, -4, -1, s.Size, s.Size - 1, s.Size - 4, s.Size + 8),
            3 => _rng.Next(0, s.Size),
            _ => f.Offset,
        };
        if (_rng.Next(6) != 0 && f.Size is 1 or 2 or 4 or 8 && off == f.Offset) width = f.Size;
        return (off, width);
    }

    /// <summary>A member of <paramref name="s"/> that points to a struct (both structs have some).</summary>
    Field PointerMember((Field[] Fields, int Size) s)
    {
        var ptrs = s.Fields.Where(f => f.Pointer).ToArray();
        return ptrs[_rng.Next(ptrs.Length)];
    }

    /// <summary>Loads a pointer member of the struct r0 points to into r3 (NULL-checked or not) and reads through it.</summary>
    void PointerMemberLoad((Field[] Fields, int Size) s, int[] widths, int[] offsets, string tag)
    {
        var p = PointerMember(s);
        Emit($"ldxdw %r3, [%r0+{p.Offset}]");
        if (Chance(2)) Emit($"jeq %r3, 0, {_out}");
        Emit($"ldx{WidthName(Pick(widths))} %r2, [%r3+{Pick(offsets)}] # F:{tag}");
    }

    /// <summary>A field of the struct r0 points to into the scalar pool (its range is the field type's), perhaps bounded, then used.</summary>
    void FieldIntoScalar((Field[] Fields, int Size) s, string tag, bool bound)
    {
        int x = Scalar();
        var (off, width) = FieldAccess(s);
        Emit($"ldx{WidthName(width)} %r{x}, [%r0+{off}] # F:{tag}");
        if (bound && Chance(2)) Bound(x, _out);
        Use(x);
    }

    static string WidthName(int bytes) => bytes switch { 1 => "b", 2 => "h", 4 => "w", _ => "dw" };

    /// <summary>
    /// bpf_get_current_task_btf, then loads of task_struct fields (right and wrong offsets and sizes), pointer members
    /// followed (with or without a NULL check), a store or pointer arithmetic now and then; a loaded value may become a scalar the templates use.
    /// </summary>
    void TaskBtf()
    {
        Emit("call 158 # F:task_btf");
        if (Chance(6)) Emit(Pick($"add %r0, {Pick(8, -8, 1264)}", "mov %r1, %r0\nmov %r0, %r1"));
        for (int i = _rng.Next(1, 4); i > 0; i--)
        {
            var (off, width) = FieldAccess(s_task.Value);
            if (Chance(15)) { Emit($"st{WidthName(width)} [%r0+{off}], 1 # F:task_btf_load"); continue; }
            if (Chance(20) && _scalars.Count > 0) { Emit($"mov %r1, %r0\nadd %r1, %r{Scalar()}\nldxb %r2, [%r1+0] # F:task_btf_load"); continue; }
            Emit($"ldx{WidthName(width)} %r2, [%r0+{off}] # F:task_btf_load");
        }
        if (Chance(2)) PointerMemberLoad(s_task.Value, [1, 4, 8], [0, 0, 8, 16, 1264, -8, 4096], "task_btf_ptr_load");
        if (Chance(3) && _scalars.Count > 0) FieldIntoScalar(s_task.Value, "task_btf_load", bound: true);
    }

    /// <summary>The task argument of a storage helper: the current task, NULL, a scalar, the context, a pointer member, a map value.</summary>
    string TaskArgument() => _rng.Next(10) switch
    {
        0 => "mov %r2, 0",
        1 => "mov %r2, 1",
        2 => $"ldxdw %r2, [%r10-{CtxSlot}]",
        3 => "mov %r2, %r9",
        4 => $"call 158 # F:task_btf\nldxdw %r2, [%r0+{PointerMember(s_task.Value).Offset}]",
        5 => "call 158 # F:task_btf\nmov %r2, %r0\nadd %r2, 8",
        _ => "call 158 # F:task_btf\nmov %r2, %r0",
    };

    /// <summary>The initial-value argument: NULL, 16 written stack bytes, 8 of them, unwritten stack, the map value (or its last 8 bytes), a scalar.</summary>
    string InitValue() => _rng.Next(9) switch
    {
        0 => $"stdw [%r10-{InitBuffer}], 1\nstdw [%r10-{InitBuffer - 8}], 2\nmov %r3, %r10\nadd %r3, -{InitBuffer}",
        1 => $"stdw [%r10-{InitBuffer - 8}], 2\nmov %r3, %r10\nadd %r3, -{InitBuffer - 8}",
        2 => $"mov %r3, %r10\nadd %r3, -{InitBuffer + 8}",
        3 => "mov %r3, %r9",
        4 => $"mov %r3, %r9\nadd %r3, {Pick(32, 40)}",
        5 => "mov %r3, 8",
        _ => "mov %r3, 0",
    };

    /// <summary>bpf_task_storage_get (or _delete) with a task, a map (swapped now and then), an initial value, flags; the value then used.</summary>
    void TaskStorageCall()
    {
        string task = TaskArgument();
        int map = Pick(TaskStorage, TaskStorage, TaskStorage, TaskStorage, TaskStorage, CgrpStorage, ValueMap, LockHash);
        if (Chance(4))
        {
            Emit($"{task}\nldmap %r1, {map}\ncall 157 # F:task_storage_delete");
            return;
        }
        Emit(task);
        Emit(InitValue());
        Emit($"ldmap %r1, {map}");
        Emit(_rng.Next(8) switch
        {
            0 => "mov %r4, 0",
            1 => "mov %r4, 2",
            2 => "mov %r4, 3",
            3 when _scalars.Count > 0 => $"mov %r4, %r{Scalar()}",
            _ => "mov %r4, 1",
        });
        Emit("call 156 # F:task_storage_get");
        UseStorageValue();
    }

    /// <summary>The value a storage get returned: NULL-checked (or not), then read, written, or offset by a scalar.</summary>
    void UseStorageValue()
    {
        if (!Chance(8)) Emit($"jeq %r0, 0, {_out}");
        int w = Pick(0, 1, 2, 3, 3);
        switch (_rng.Next(5))
        {
            case 0: Emit($"st{s_widths[w]} [%r0+{Pick(0, 8, 12, 15, 16, -1)}], 7"); break;
            case 1:
                if (_scalars.Count > 0)
                {
                    int x = Scalar();
                    if (Chance(2)) Bound(x, _out);
                    Emit($"add %r0, %r{x}\nldx{s_widths[w]} %r1, [%r0+{Pick(0, 4, 8)}]");
                    break;
                }
                goto default;
            case 2:
                if (_scalars.Count > 0) { int x = Scalar(); Emit($"ldx{s_widths[w]} %r{x}, [%r0+{Pick(0, 8, 12)}]"); Use(x); break; }
                goto default;
            case 3: Emit($"mov %r1, 1\nlock add [%r0+{Pick(0, 8, 12)}], %r1"); break;
            default: Emit($"ldx{s_widths[w]} %r1, [%r0+{Pick(0, 4, 8, 14, 16)}]"); break;
        }
    }

    /// <summary>bpf_cgrp_storage_get/delete with a NULL, scalar or wrong-typed cgroup and swapped maps; bpf_current_task_under_cgroup.</summary>
    void CgroupCalls()
    {
        int map = Pick(CgrpStorage, CgrpStorage, CgrpStorage, TaskStorage, ValueMap);
        string cgroup = Pick("mov %r2, 0", "mov %r2, 0", "mov %r2, 4", "call 158 # F:task_btf\nmov %r2, %r0", $"ldxdw %r2, [%r10-{CtxSlot}]");
        switch (_rng.Next(4))
        {
            case 0:
                Emit($"{cgroup}\nldmap %r1, {map}\ncall 211 # F:cgrp_storage_delete");
                break;
            case 1:
                {
                    string index = _scalars.Count > 0 && Chance(2) ? $"mov %r2, %r{Scalar()}" : $"mov %r2, {Pick(0, 1, 3, 4, -1)}";
                    Emit($"{index}\nldmap %r1, {Pick(CgroupArray, CgroupArray, CgroupArray, ValueMap, CgrpStorage)}\ncall 37 # F:task_under_cgroup");
                    if (_scalars.Count > 0 && Chance(2)) { int x = Scalar(); Emit($"mov %r{x}, %r0"); Use(x); }
                    break;
                }
            default:
                Emit($"{cgroup}\n{InitValue()}\nldmap %r1, {map}\nmov %r4, {Pick(0, 1, 1, 2)}\ncall 210 # F:cgrp_storage_get");
                UseStorageValue();
                break;
        }
    }

    /// <summary>
    /// A LOCAL dynptr (bpf_dynptr_from_mem) over the map value or the zeroed stack, then a slice (bpf_dynptr_data) used, a read
    /// or write through the dynptr, and now and then the dynptr destroyed (a store over it, or remade) before the slice is used.
    /// </summary>
    void Dynptr()
    {
        // Linux 6.18 takes only a map value for the data (the stack is refused: "Unsupported reg type fp"), which is tried now and then.
        string mem = _rng.Next(10) switch
        {
            0 => $"mov %r1, %r10\nadd %r1, -{Pick(16, 32, 64)}",
            1 or 2 => $"mov %r1, %r9\nadd %r1, {Pick(8, 32, 40)}",
            _ => "mov %r1, %r9",
        };
        string size = _scalars.Count > 0 && Chance(4) ? $"mov %r2, %r{Scalar()}" : $"mov %r2, {Pick(0, 8, 16, 32, 48, 64, 49)}";
        int slot = Chance(12) ? Pick(DynptrSlot - 4, DynptrSlot + 8, 64) : DynptrSlot;
        Emit($"{mem}\n{size}\nmov %r3, {Pick(0, 0, 0, 0, 1)}\nmov %r4, %r10\nadd %r4, -{slot}\ncall 197 # F:dynptr_from_mem");
        if (Chance(4))
        {
            // Read or write through the dynptr: bpf_dynptr_read(dst, len, src, offset, flags) / bpf_dynptr_write(dst, offset, src, len, flags).
            string len = _scalars.Count > 0 && Chance(4) ? $"mov %r2, %r{Scalar()}" : $"mov %r2, {Pick(0, 4, 8, 16, 24)}";
            if (Chance(2))
                Emit($"mov %r1, %r10\nadd %r1, -{Pick(32, 64, 24)}\n{len}\nmov %r3, %r10\nadd %r3, -{DynptrSlot}\nmov %r4, {Pick(0, 0, 8, 40)}\nmov %r5, 0\ncall 201 # F:dynptr_read_write");
            else
                Emit($"mov %r1, %r10\nadd %r1, -{DynptrSlot}\nmov %r2, {Pick(0, 0, 8, 40)}\nmov %r3, %r10\nadd %r3, -{Pick(32, 64)}\n{len.Replace("%r2", "%r4", StringComparison.Ordinal)}\nmov %r5, 0\ncall 202 # F:dynptr_read_write");
            return;
        }
        // bpf_dynptr_data(ptr, offset, len): len must be a constant.
        Emit($"mov %r1, %r10\nadd %r1, -{DynptrSlot}\nmov %r2, {Pick(0, 0, 4, 8, 40)}\nmov %r3, {Pick(4, 8, 8, 16, 0)}\ncall 203 # F:dynptr_slice");
        if (!Chance(8)) Emit($"jeq %r0, 0, {_out}");
        if (Chance(3))
        {
            // The dynptr destroyed: a store over its slot, or bpf_dynptr_from_mem remaking it in place; the slice is then dead.
            // The slice waits in a stack slot across the call (the kernel kills spilled slices as well).
            Emit($"stxdw [%r10-{SliceSlot}], %r0");
            Emit(Chance(2)
                ? $"st{Pick("dw", "w", "b")} [%r10-{DynptrSlot - Pick(0, 0, 8, 12)}], 0"
                : $"mov %r1, %r9\nmov %r2, 8\nmov %r3, 0\nmov %r4, %r10\nadd %r4, -{DynptrSlot}\ncall 197");
            Emit($"ldxdw %r3, [%r10-{SliceSlot}]\nldx{Pick("b", "w", "dw")} %r1, [%r3+0] # F:dynptr_invalidated");
            return;
        }
        int w = Pick(0, 1, 2, 3);
        Emit(Chance(3) ? $"st{s_widths[w]} [%r0+{Pick(0, 4, 8)}], 1" : $"ldx{s_widths[w]} %r1, [%r0+{Pick(0, 4, 7, 8)}]");
    }

    /// <summary>bpf_cast_to_kern_ctx on the saved context (or another pointer), then loads of bpf_sk_lookup_kern fields and the pointers in it.</summary>
    void KernCtx()
    {
        Emit(_rng.Next(10) switch
        {
            0 => "mov %r1, %r9",
            1 => "mov %r1, %r10\nadd %r1, -8",
            _ => $"ldxdw %r1, [%r10-{CtxSlot}]",
        });
        Emit("kcall bpf_cast_to_kern_ctx");
        for (int i = _rng.Next(1, 3); i > 0; i--)
        {
            var (off, width) = FieldAccess(s_kernCtx.Value);
            Emit(Chance(12) ? $"st{WidthName(width)} [%r0+{off}], 0 # F:kern_ctx_load" : $"ldx{WidthName(width)} %r2, [%r0+{off}] # F:kern_ctx_load");
        }
        if (Chance(2)) PointerMemberLoad(s_kernCtx.Value, [1, 2, 4, 8], [0, 4, 12, 16, -4], "kern_ctx_load");
        if (Chance(3) && _scalars.Count > 0) FieldIntoScalar(s_kernCtx.Value, "kern_ctx_load", bound: false);
    }
}
