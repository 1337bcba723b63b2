namespace BpfJit.Verifier;

/// <summary>The kernel's register types (enum bpf_reg_type) that SK_LOOKUP and SK_REUSEPORT programs can meet.</summary>
public enum RegType : byte
{
    /// <summary>Never written: reading it is an error (<c>R%d !read_ok</c>).</summary>
    NotInit,
    /// <summary>A number, described by a tnum and bounds.</summary>
    Scalar,
    /// <summary>The context (<c>struct bpf_sk_lookup *</c>).</summary>
    PtrToCtx,
    /// <summary>A map, from ld_imm64 (<c>map_ptr</c>).</summary>
    ConstPtrToMap,
    /// <summary>A pointer into a map value.</summary>
    PtrToMapValue,
    /// <summary>A map value pointer that may be NULL (a lookup result before the NULL check).</summary>
    PtrToMapValueOrNull,
    /// <summary>A pointer into the stack of some frame (<c>fp</c>).</summary>
    PtrToStack,
    /// <summary>A pointer to a map key (callbacks of for_each_map_elem).</summary>
    PtrToMapKey,
    /// <summary>A socket (<c>struct bpf_sock *</c>).</summary>
    PtrToSocket,
    /// <summary>A socket or NULL.</summary>
    PtrToSocketOrNull,
    /// <summary>Ring buffer memory from ringbuf_reserve.</summary>
    PtrToMem,
    /// <summary>Ring buffer memory or NULL.</summary>
    PtrToMemOrNull,
    /// <summary>A subprogram address (ld_imm64 with BPF_PSEUDO_FUNC).</summary>
    PtrToFunc,
    /// <summary>
    /// Memory a global function's pointer argument points to (the kernel's plain PTR_TO_MEM, <c>mem</c>): the
    /// pointee's size from the function's BTF prototype, whatever the caller passed (stack, map value, memory).
    /// </summary>
    PtrToArgMem,
    /// <summary>A global function's pointer argument that may be NULL (<c>mem_or_null</c>): not tagged <c>arg:nonnull</c>.</summary>
    PtrToArgMemOrNull,
    /// <summary>Read-only memory of <see cref="RegState.Aux"/> bytes (the kernel's PTR_TO_MEM | MEM_RDONLY): bpf_iter_num_next's element.</summary>
    PtrToRdonlyMem,
    /// <summary>
    /// A trusted pointer to a kernel object described by kernel BTF (the kernel's PTR_TO_BTF_ID | PTR_TRUSTED, never NULL):
    /// <see cref="RegState.Aux"/> is the struct's type id in <see cref="Frontend.Btf.KernelBtf"/>. Its fields are read as
    /// the kernel's btf_struct_access allows (<c>Checker.BtfStruct.cs</c>).
    /// </summary>
    PtrToBtfId,
    /// <summary>
    /// A pointer into the packet (the kernel's PTR_TO_PACKET, <c>pkt</c>): <see cref="RegState.Aux"/> is its range, the
    /// bytes from the packet start (plus the pointer's variable offset) that a data/data_end compare proved readable;
    /// negative after a compare that put it at or beyond the end (AT_PKT_END, BEYOND_PKT_END). Pointers with the same
    /// <see cref="RegState.Id"/> share a base; a variable offset added gives a new id and range 0.
    /// </summary>
    PtrToPacket,
    /// <summary>One past the packet's last byte (PTR_TO_PACKET_END, <c>pkt_end</c>): compared, never dereferenced.</summary>
    PtrToPacketEnd,
    /// <summary>The common part of a socket (PTR_TO_SOCK_COMMON, <c>sock_common</c>).</summary>
    PtrToSockCommon,
    /// <summary>A socket's common part or NULL (<c>sock_common_or_null</c>): SK_REUSEPORT's <c>migrating_sk</c>.</summary>
    PtrToSockCommonOrNull,
    /// <summary>
    /// A pointer to a read-only <c>struct bpf_dynptr</c> the runtime made (the kernel's CONST_PTR_TO_DYNPTR,
    /// <c>dynptr_ptr</c>): bpf_user_ringbuf_drain's callback gets one per sample. It can only be passed to the dynptr
    /// helpers, unmodified.
    /// </summary>
    ConstPtrToDynptr,
    /// <summary>
    /// An untrusted pointer to a kernel object described by kernel BTF (the kernel's plain PTR_TO_BTF_ID, <c>ptr_</c>):
    /// <see cref="RegState.Aux"/> is a type id of <see cref="Frontend.Btf.KernelBtf"/>. The bpf_skc_to_* casts return one
    /// (after the NULL check). As for <see cref="PtrToBtfId"/>, its fields can be read.
    /// </summary>
    PtrToUntrustedBtfId,
    /// <summary>An untrusted kernel BTF pointer that may be NULL (PTR_TO_BTF_ID | PTR_MAYBE_NULL, <c>ptr_or_null_</c>).</summary>
    PtrToBtfIdOrNull,
    /// <summary>
    /// A kernel BTF pointer protected by RCU (PTR_TO_BTF_ID | MEM_RCU, <c>rcu_ptr_</c>): a pointer member the kernel's
    /// BTF_TYPE_SAFE_RCU lists, loaded through a trusted or RCU pointer (SK_LOOKUP programs always run in an RCU
    /// read-side section). <see cref="RegState.Aux"/> is a type id of <see cref="Frontend.Btf.KernelBtf"/>.
    /// </summary>
    PtrToRcuBtfId,
    /// <summary>
    /// A kernel BTF pointer the verifier does not trust (PTR_TO_BTF_ID | PTR_UNTRUSTED, <c>untrusted_ptr_</c>): any other
    /// pointer member loaded through a BTF pointer. Its fields can be read; no helper takes it.
    /// </summary>
    PtrToUntrustedFlagBtfId,
    /// <summary>
    /// Read-only memory of unknown size the verifier does not trust (PTR_TO_MEM | MEM_RDONLY | PTR_UNTRUSTED,
    /// <c>rdonly_untrusted_mem</c>): a kernel struct's pointer member to anything but a struct. Loads at any offset are
    /// allowed and read 0 where nothing is (the kernel's PROBE_MEM).
    /// </summary>
    PtrToRdonlyUntrustedMem,
    /// <summary>
    /// An RCU-protected kernel BTF pointer that may be NULL (PTR_TO_BTF_ID | MEM_RCU | PTR_MAYBE_NULL, <c>rcu_ptr_or_null_</c>):
    /// a referenced kptr (<c>__kptr</c>) loaded from a map value; <see cref="PtrToRcuBtfId"/> once checked.
    /// </summary>
    PtrToRcuBtfIdOrNull,
    /// <summary>
    /// An untrusted kernel BTF pointer that may be NULL (PTR_TO_BTF_ID | PTR_UNTRUSTED | PTR_MAYBE_NULL,
    /// <c>untrusted_ptr_or_null_</c>): an unreferenced kptr (<c>__kptr_untrusted</c>) loaded from a map value;
    /// <see cref="PtrToUntrustedFlagBtfId"/> once checked.
    /// </summary>
    PtrToUntrustedBtfIdOrNull,
}

/// <summary>The kernel structures a <see cref="RegType.PtrToBtfId"/> pointer can point to in an SK_LOOKUP program.</summary>
public enum KernelStruct
{
    /// <summary><c>struct bpf_sk_lookup_kern</c>, the kernel's own context (bpf_cast_to_kern_ctx).</summary>
    BpfSkLookupKern,
    /// <summary><c>struct task_struct</c>, the current task (bpf_get_current_task_btf).</summary>
    TaskStruct,
    /// <summary><c>struct tcp_sock</c> (bpf_skc_to_tcp_sock).</summary>
    TcpSock,
    /// <summary><c>struct tcp6_sock</c> (bpf_skc_to_tcp6_sock).</summary>
    Tcp6Sock,
    /// <summary><c>struct tcp_timewait_sock</c> (bpf_skc_to_tcp_timewait_sock).</summary>
    TcpTimewaitSock,
    /// <summary><c>struct tcp_request_sock</c> (bpf_skc_to_tcp_request_sock).</summary>
    TcpRequestSock,
    /// <summary><c>struct udp6_sock</c> (bpf_skc_to_udp6_sock).</summary>
    Udp6Sock,
    /// <summary><c>struct unix_sock</c> (bpf_skc_to_unix_sock).</summary>
    UnixSock,
    /// <summary><c>struct mptcp_sock</c> (bpf_skc_to_mptcp_sock).</summary>
    MptcpSock,
    /// <summary><c>struct pt_regs</c>, a task's saved user registers (bpf_task_pt_regs).</summary>
    PtRegs,
    /// <summary><c>struct vm_area_struct</c>, a mapping of a task's address space (bpf_find_vma's callback).</summary>
    VmAreaStruct,
    /// <summary><c>struct cgroup</c>, a cgroup (bpf_cgrp_storage_get's owner; no SK_LOOKUP helper or kfunc returns one).</summary>
    Cgroup,
}

/// <summary>Names of register types as the kernel prints them.</summary>
public static class RegTypeNames
{
    /// <summary>The kernel's short name of a type (<c>ctx</c>, <c>fp</c>, <c>map_value_or_null</c>, <c>sock</c>...).</summary>
    public static string Name(RegType type) => type switch
    {
        RegType.NotInit => "?",
        RegType.Scalar => "scalar",
        RegType.PtrToCtx => "ctx",
        RegType.ConstPtrToMap => "map_ptr",
        RegType.PtrToMapValue => "map_value",
        RegType.PtrToMapValueOrNull => "map_value_or_null",
        RegType.PtrToStack => "fp",
        RegType.PtrToMapKey => "map_key",
        RegType.PtrToSocket => "sock",
        RegType.PtrToSocketOrNull => "sock_or_null",
        RegType.PtrToMem => "ringbuf_mem",
        RegType.PtrToMemOrNull => "ringbuf_mem_or_null",
        RegType.PtrToFunc => "func",
        RegType.PtrToArgMem => "mem",
        RegType.PtrToRdonlyMem => "rdonly_mem",
        RegType.PtrToArgMemOrNull => "mem_or_null",
        RegType.PtrToBtfId => "trusted_ptr_",
        RegType.PtrToPacket => "pkt",
        RegType.PtrToPacketEnd => "pkt_end",
        RegType.PtrToSockCommon => "sock_common",
        RegType.PtrToSockCommonOrNull => "sock_common_or_null",
        RegType.ConstPtrToDynptr => "dynptr_ptr",
        RegType.PtrToUntrustedBtfId => "ptr_",
        RegType.PtrToBtfIdOrNull => "ptr_or_null_",
        RegType.PtrToRcuBtfId => "rcu_ptr_",
        RegType.PtrToUntrustedFlagBtfId => "untrusted_ptr_",
        RegType.PtrToRdonlyUntrustedMem => "rdonly_untrusted_mem",
        RegType.PtrToRcuBtfIdOrNull => "rcu_ptr_or_null_",
        RegType.PtrToUntrustedBtfIdOrNull => "untrusted_ptr_or_null_",
        _ => type.ToString(),
    };

    /// <summary>True for the types that may be NULL until checked.</summary>
    public static bool IsNullable(RegType type) => type is RegType.PtrToMapValueOrNull or RegType.PtrToSocketOrNull or RegType.PtrToMemOrNull
        or RegType.PtrToArgMemOrNull or RegType.PtrToSockCommonOrNull or RegType.PtrToBtfIdOrNull or RegType.PtrToRcuBtfIdOrNull
        or RegType.PtrToUntrustedBtfIdOrNull;

    /// <summary>True for the socket types (the kernel's type_is_sk_pointer).</summary>
    public static bool IsSocket(RegType type) => type is RegType.PtrToSocket or RegType.PtrToSockCommon;

    /// <summary>True for the kernel BTF pointer types (base type PTR_TO_BTF_ID): <see cref="RegState.Aux"/> is a type id of <see cref="Frontend.Btf.KernelBtf"/>.</summary>
    public static bool IsBtfId(RegType type) => type is RegType.PtrToBtfId or RegType.PtrToUntrustedBtfId or RegType.PtrToBtfIdOrNull
        or RegType.PtrToRcuBtfId or RegType.PtrToUntrustedFlagBtfId or RegType.PtrToRcuBtfIdOrNull or RegType.PtrToUntrustedBtfIdOrNull;

    /// <summary>
    /// True for the types whose loads the kernel turns into BPF_PROBE_MEM loads (kernel objects it reads through BTF): a
    /// load through one reads 0 where the address holds nothing, and no instruction may mix them with other pointers.
    /// </summary>
    public static bool IsProbeMem(RegType type) => IsBtfId(type) || type == RegType.PtrToRdonlyUntrustedMem;

    /// <summary>True for pointer types.</summary>
    public static bool IsPointer(RegType type) => type is not (RegType.NotInit or RegType.Scalar);

    /// <summary>The type a nullable pointer becomes once proven non-NULL.</summary>
    public static RegType NonNull(RegType type) => type switch
    {
        RegType.PtrToMapValueOrNull => RegType.PtrToMapValue,
        RegType.PtrToSocketOrNull => RegType.PtrToSocket,
        RegType.PtrToMemOrNull => RegType.PtrToMem,
        RegType.PtrToArgMemOrNull => RegType.PtrToArgMem,
        RegType.PtrToSockCommonOrNull => RegType.PtrToSockCommon,
        RegType.PtrToBtfIdOrNull => RegType.PtrToUntrustedBtfId,
        RegType.PtrToRcuBtfIdOrNull => RegType.PtrToRcuBtfId,
        RegType.PtrToUntrustedBtfIdOrNull => RegType.PtrToUntrustedFlagBtfId,
        _ => type,
    };
}
