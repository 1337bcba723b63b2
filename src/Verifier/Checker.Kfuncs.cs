using BpfJit.Frontend;
using BpfJit.Frontend.Btf;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// Calls to the kernel functions BpfJit runs (the kernel's check_kfunc_call for them): the RCU read
/// section (<c>active_rcu_lock</c>) and the open-coded numeric iterator (Checker.Iterators.cs).
/// </summary>
internal sealed partial class Checker
{
    void CheckKfuncCall(Instruction ins, int idx)
    {
        string? name = KernelFunctions.Name(ins.Imm, _opt.KernelFunctions);
        // do_check refuses calls under a bpf_spin_lock before it looks the kfunc up; only the
        // numeric iterator (kfunc_spin_allowed) may be used there among the common kfuncs.
        if (_cur.LockMap >= 0 && !IsIterNumKfunc(name))
            throw Err("function calls are not allowed while holding a lock");
        if (name == null || !KfuncTable.TryGet(name, out _)) throw Err(KernelFunctions.Refusal(ins.Imm, _opt.KernelFunctions));
        var regs = Regs;
        switch (name)
        {
            case "bpf_rcu_read_lock":
                if (_cur.RcuLock) throw Err($"nested rcu read lock (kernel function {name})");
                _cur.RcuLock = true;
                break;
            case "bpf_rcu_read_unlock":
                if (!_cur.RcuLock) throw Err($"unmatched rcu read unlock (kernel function {name})");
                _cur.RcuLock = false;
                // The end of the section the program opened: what RCU protected becomes untrusted (the kernel clears MEM_RCU).
                _cur.ForEachReg((ref RegState r) => { if (r.Type == RegType.PtrToRcuBtfId) r.Type = RegType.PtrToUntrustedFlagBtfId; });
                break;
            case "bpf_cast_to_kern_ctx":
                {
                    // KF_ARG_PTR_TO_CTX: the unmodified context; the result is the kernel's context, trusted, never NULL.
                    CheckRead(1);
                    var ctx = regs[1];
                    if (ctx.Type != RegType.PtrToCtx) throw Err($"arg#0 expected pointer to ctx, but got {RegName(ctx)}");
                    if (ctx.Off != 0 || !ctx.VarOff.Equals(0UL)) throw Err($"dereference of modified ctx ptr R1 off={ctx.Off} disallowed");
                    for (int r = 1; r <= 5; r++) regs[r] = RegState.NotInit;
                    regs[0] = RegState.Pointer(RegType.PtrToBtfId, 0, BtfStruct(KernelStruct.BpfSkLookupKern));
                    _cur.Insn = idx + 1;
                    return;
                }
            default:
                CheckIterNumCall(name, idx);
                return;
        }
        // Both return void: r0-r5 are clobbered, r0 cannot be read.
        for (int r = 0; r < BpfAbi.CallerSavedCount; r++) regs[r] = RegState.NotInit;
        _cur.Insn = idx + 1;
    }

    /// <summary>The type id in the bundled kernel BTF (<see cref="KernelBtf"/>) of a structure a helper or kfunc gives a pointer to.</summary>
    internal static int BtfStruct(KernelStruct s) => (int)KernelBtf.StructId(KernelStructName(s));

    /// <summary>The C name of the kernel structure a BTF pointer's <see cref="RegState.Aux"/> names.</summary>
    internal static string BtfName(int aux) => KernelBtf.Name((uint)aux);

    /// <summary>The C name of a kernel structure a BTF pointer points to.</summary>
    internal static string KernelStructName(KernelStruct s) => s switch
    {
        KernelStruct.BpfSkLookupKern => "bpf_sk_lookup_kern",
        KernelStruct.TaskStruct => "task_struct",
        KernelStruct.TcpSock => "tcp_sock",
        KernelStruct.Tcp6Sock => "tcp6_sock",
        KernelStruct.TcpTimewaitSock => "tcp_timewait_sock",
        KernelStruct.TcpRequestSock => "tcp_request_sock",
        KernelStruct.Udp6Sock => "udp6_sock",
        KernelStruct.UnixSock => "unix_sock",
        KernelStruct.MptcpSock => "mptcp_sock",
        KernelStruct.PtRegs => "pt_regs",
        KernelStruct.VmAreaStruct => "vm_area_struct",
        KernelStruct.Cgroup => "cgroup",
        _ => s.ToString(),
    };

    static bool IsIterNumKfunc(string? name) => name is "bpf_iter_num_new" or "bpf_iter_num_next" or "bpf_iter_num_destroy";
}
