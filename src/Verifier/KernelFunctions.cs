using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// Kernel function (kfunc) calls. BpfJit runs the few SK_LOOKUP programs can use (<see cref="KfuncTable"/>:
/// the RCU read section markers and the numeric iterator, checked in Checker.Kfuncs.cs); the verifier
/// rejects a call to any other where the path reaches it, as Linux rejects a kfunc the program type may not
/// call (<c>fetch_kfunc_meta</c>), and says when Linux would have allowed it.
/// </summary>
internal static class KernelFunctions
{
    /// <summary>
    /// Linux 6.18's common kfunc set (kernel/bpf/helpers.c, <c>common_btf_ids</c>), registered for every
    /// program type and so callable from SK_LOOKUP; no other kfunc set is registered for SK_LOOKUP.
    /// </summary>
    static readonly HashSet<string> s_allowedBySkLookup =
    [
        "bpf_cast_to_kern_ctx", "bpf_rdonly_cast", "bpf_rcu_read_lock", "bpf_rcu_read_unlock",
        "bpf_dynptr_slice", "bpf_dynptr_slice_rdwr", "bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy",
        "bpf_iter_task_vma_new", "bpf_iter_task_vma_next", "bpf_iter_task_vma_destroy",
        "bpf_iter_css_task_new", "bpf_iter_css_task_next", "bpf_iter_css_task_destroy",
        "bpf_iter_css_new", "bpf_iter_css_next", "bpf_iter_css_destroy",
        "bpf_iter_task_new", "bpf_iter_task_next", "bpf_iter_task_destroy",
        "bpf_dynptr_adjust", "bpf_dynptr_is_null", "bpf_dynptr_is_rdonly", "bpf_dynptr_size", "bpf_dynptr_clone", "bpf_dynptr_copy",
        "bpf_modify_return_test_tp", "bpf_wq_init", "bpf_wq_set_callback_impl", "bpf_wq_start",
        "bpf_preempt_disable", "bpf_preempt_enable", "bpf_iter_bits_new", "bpf_iter_bits_next", "bpf_iter_bits_destroy",
        "bpf_copy_from_user_str", "bpf_copy_from_user_task_str", "bpf_get_kmem_cache",
        "bpf_iter_kmem_cache_new", "bpf_iter_kmem_cache_next", "bpf_iter_kmem_cache_destroy",
        "bpf_local_irq_save", "bpf_local_irq_restore", "bpf_probe_read_user_dynptr", "bpf_probe_read_kernel_dynptr",
        "bpf_probe_read_user_str_dynptr", "bpf_probe_read_kernel_str_dynptr", "bpf_copy_from_user_dynptr",
        "bpf_copy_from_user_str_dynptr", "bpf_copy_from_user_task_dynptr", "bpf_copy_from_user_task_str_dynptr",
        "bpf_iter_dmabuf_new", "bpf_iter_dmabuf_next", "bpf_iter_dmabuf_destroy", "__bpf_trap", "bpf_cgroup_read_xattr",
    ];

    /// <summary>True when Linux 6.18 lets an SK_LOOKUP program call the kernel function <paramref name="name"/>.</summary>
    public static bool AllowedByLinux(string name) => s_allowedBySkLookup.Contains(name);

    /// <summary>
    /// The name of the function a kfunc call's immediate <paramref name="imm"/> refers to: an index into
    /// <paramref name="names"/>, or without names BpfJit's id (<see cref="KfuncTable"/>); null when neither.
    /// </summary>
    public static string? Name(int imm, IReadOnlyList<string>? names)
    {
        if (names != null) return imm >= 0 && imm < names.Count ? names[imm] : null;
        return KfuncTable.TryGet(imm, out var f) ? f.Name : null;
    }

    /// <summary>The rejection of a kfunc call whose immediate is <paramref name="imm"/>.</summary>
    public static string Refusal(int imm, IReadOnlyList<string>? names)
    {
        if (Name(imm, names) is not { } name)
            return $"calling kernel function kfunc#{imm} is not supported: BpfJit has no kernel BTF to resolve it";
        // Linux's wording for a kfunc outside the program type's sets; BpfJit's own for one Linux would run.
        return AllowedByLinux(name)
            ? $"calling kernel function {name} is not supported by BpfJit (Linux allows it for SK_LOOKUP)"
            : $"calling kernel function {name} is not allowed";
    }
}
