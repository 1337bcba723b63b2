using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// Helper arguments and results that are pointers to kernel objects described by kernel BTF (PTR_TO_BTF_ID): the
/// kernel's check_reg_type for ARG_PTR_TO_BTF_ID and ARG_PTR_TO_BTF_ID_SOCK_COMMON (btf_struct_ids_match) and
/// check_helper_call's RET_PTR_TO_BTF_ID results. Loads through these pointers are refused in <c>Checker.Mem.cs</c>.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>The kernel's btf_ptr_types, as check_reg_type lists them.</summary>
    const string BtfPtrTypes = "ptr_, trusted_ptr_, rcu_ptr_";

    /// <summary>The structure of a helper prototype's ret_btf_id or arg_btf_id, by its C name.</summary>
    KernelStruct StructNamed(string? name, string helperName) =>
        Enum.GetValues<KernelStruct>().Cast<KernelStruct?>().FirstOrDefault(s => KernelStructName(s!.Value) == name)
        ?? throw Err($"kernel subsystem misconfigured verifier: {helperName} has no BTF type {name ?? "(none)"}");

    /// <summary>
    /// True when a pointer to <paramref name="s"/> is also a pointer to <c>struct sock_common</c>: the structure begins
    /// with it, through its first members (btf_struct_ids_match's walk at offset 0: tcp_sock, inet_connection_sock, sock,
    /// sock_common).
    /// </summary>
    static bool BeginsWithSockCommon(KernelStruct s) => s is KernelStruct.TcpSock or KernelStruct.Tcp6Sock or KernelStruct.TcpTimewaitSock
        or KernelStruct.TcpRequestSock or KernelStruct.Udp6Sock or KernelStruct.UnixSock or KernelStruct.MptcpSock;

    /// <summary>
    /// check_reg_type for a BTF pointer argument: the register's type among the compatible ones, then, for a BTF pointer,
    /// its structure (at its fixed offset) must be or begin with the one the prototype names; then check_func_arg_reg_off:
    /// a BTF pointer may not have a variable offset.
    /// </summary>
    void CheckBtfIdArg(int regno, in RegState reg, ArgType arg, HelperProto proto, string helperName)
    {
        bool btf = RegTypeNames.IsBtfId(reg.Type);
        string expected;
        if (arg == ArgType.PtrToBtfIdSockCommon)
        {
            if (!btf && !RegTypeNames.IsSocket(reg.Type) || reg.Type == RegType.PtrToBtfIdOrNull) TypeMismatch(regno, SockCommonTypes);
            expected = "sock_common";
            // The structures BpfJit knows have no sock_common past offset 0, so any other offset does not match.
            if (btf && (reg.Off != 0 || !BeginsWithSockCommon((KernelStruct)reg.Aux)))
                throw Err($"R{regno} is of type {KernelStructName((KernelStruct)reg.Aux)} but {expected} is expected");
        }
        else
        {
            if (reg.Type is not (RegType.PtrToBtfId or RegType.PtrToUntrustedBtfId)) TypeMismatch(regno, BtfPtrTypes);
            var want = StructNamed(proto.ArgBtf, helperName);
            expected = KernelStructName(want);
            if (reg.Off != 0 || (KernelStruct)reg.Aux != want)
                throw Err($"R{regno} is of type {KernelStructName((KernelStruct)reg.Aux)} but {expected} is expected");
        }
        if (btf && !reg.VarOff.Equals(0UL)) throw Err($"variable {RegName(reg)} access var_off={reg.VarOff} disallowed");
    }

    /// <summary>
    /// check_helper_call for RET_PTR_TO_BTF_ID and RET_PTR_TO_BTF_ID_OR_NULL: an untrusted pointer to the prototype's
    /// structure, with a fresh id when it may be NULL; a pointer cast (is_ptr_cast_function) keeps its argument's reference.
    /// </summary>
    RegState BtfIdResult(HelperProto proto, CallMeta meta, string helperName)
    {
        var s = StructNamed(proto.RetBtf, helperName);
        bool orNull = proto.Ret == RetType.PtrToBtfIdOrNull;
        var r0 = RegState.Pointer(orNull ? RegType.PtrToBtfIdOrNull : RegType.PtrToUntrustedBtfId, 0, (int)s);
        if (orNull) r0.Id = NewId();
        if (proto.PtrCast) r0.RefObjId = meta.RefObjId;
        return r0;
    }
}
