using BpfJit.Frontend.Btf;
using BpfJit.Runtime;

namespace BpfJit.Verifier;

/// <summary>
/// Helper arguments and results that are pointers to kernel objects described by kernel BTF (PTR_TO_BTF_ID): the
/// kernel's check_reg_type for ARG_PTR_TO_BTF_ID and ARG_PTR_TO_BTF_ID_SOCK_COMMON (btf_struct_ids_match) and
/// check_helper_call's RET_PTR_TO_BTF_ID results. Loads through these pointers are <c>Checker.BtfStruct.cs</c>'s.
/// </summary>
internal sealed partial class Checker
{
    /// <summary>The kernel's btf_ptr_types, as check_reg_type lists them.</summary>
    const string BtfPtrTypes = "ptr_, trusted_ptr_, rcu_ptr_";

    /// <summary>The bundled kernel BTF id of a helper prototype's ret_btf_id or arg_btf_id, by its C name.</summary>
    int StructNamed(string? name, string helperName) =>
        (name != null ? KernelBtf.FindStruct(name) : null) is { } id ? (int)id
            : throw Err($"kernel subsystem misconfigured verifier: {helperName} has no BTF type {name ?? "(none)"}");

    /// <summary>
    /// check_reg_type for a BTF pointer argument: the register's type among the compatible ones, then, for a BTF pointer,
    /// the structure at its fixed offset must be or begin with the one the prototype names (btf_struct_ids_match); then
    /// check_func_arg_reg_off: a BTF pointer may not have a variable offset.
    /// </summary>
    void CheckBtfIdArg(int regno, in RegState reg, ArgType arg, HelperProto proto, string helperName)
    {
        bool btf = RegTypeNames.IsBtfId(reg.Type);
        int want;
        if (arg == ArgType.PtrToBtfIdSockCommon)
        {
            // btf_id_sock_common_types: the socket types, plain and trusted BTF pointers (not RCU, untrusted or maybe-NULL ones).
            if (!btf && !RegTypeNames.IsSocket(reg.Type) || reg.Type is RegType.PtrToBtfIdOrNull or RegType.PtrToRcuBtfId or RegType.PtrToUntrustedFlagBtfId)
                TypeMismatch(regno, SockCommonTypes);
            want = (int)KernelBtf.StructId("sock_common");
        }
        else
        {
            if (reg.Type is not (RegType.PtrToBtfId or RegType.PtrToUntrustedBtfId or RegType.PtrToRcuBtfId)) TypeMismatch(regno, BtfPtrTypes);
            want = StructNamed(proto.ArgBtf, helperName);
        }
        if (btf && !StructIdsMatch(reg.Aux, reg.Off, want))
            throw Err($"R{regno} is of type {BtfName(reg.Aux)} but {BtfName(want)} is expected");
        if (btf && !reg.VarOff.Equals(0UL)) throw Err($"variable {RegName(reg)} access var_off={reg.VarOff} disallowed");
    }

    /// <summary>
    /// check_helper_call for RET_PTR_TO_BTF_ID and RET_PTR_TO_BTF_ID_OR_NULL: an untrusted pointer to the prototype's
    /// structure, with a fresh id when it may be NULL; a pointer cast (is_ptr_cast_function) keeps its argument's reference.
    /// </summary>
    RegState BtfIdResult(HelperProto proto, CallMeta meta, string helperName)
    {
        int s = StructNamed(proto.RetBtf, helperName);
        bool orNull = proto.Ret == RetType.PtrToBtfIdOrNull;
        var r0 = RegState.Pointer(orNull ? RegType.PtrToBtfIdOrNull : RegType.PtrToUntrustedBtfId, 0, s);
        if (orNull) r0.Id = NewId();
        if (proto.PtrCast) r0.RefObjId = meta.RefObjId;
        return r0;
    }
}
