using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.ProgramTypes;

namespace BpfJit.Verifier;

/// <summary>ld_imm64 and helper calls (check_ld_imm, check_helper_call, check_func_arg).</summary>
internal sealed partial class Checker
{
    const string MemTypes = "fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_";
    const string SockCommonTypes = "sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_";

    void CheckLdImm64(Instruction ins, Instruction next, int idx)
    {
        CheckWrite(ins.Dst);
        var regs = Regs;
        switch ((Ld64Source)ins.Src)
        {
            case Ld64Source.Imm:
                regs[ins.Dst] = RegState.Known(ins.Imm64(next));
                return;
            case Ld64Source.MapFd or Ld64Source.MapIdx:
                {
                    int m = MapIndex(ins);
                    if (next.Imm != 0) throw Err("unrecognized bpf_ld_imm64 insn");
                    regs[ins.Dst] = RegState.Pointer(RegType.ConstPtrToMap, 0, m);
                    return;
                }
            case Ld64Source.MapValue or Ld64Source.MapIdxValue:
                {
                    int m = MapIndex(ins);
                    var map = Map(m);
                    if (map.Type != MapType.Array || map.MaxEntries != 1)
                        throw Err($"map '{map.Name}': direct value access is only supported on single-entry array maps");
                    uint off = (uint)next.Imm;
                    if (off >= (uint)map.ValueSize)
                        throw Err($"invalid access to map value pointer, value_size={map.ValueSize} off={off}");
                    regs[ins.Dst] = RegState.Pointer(RegType.PtrToMapValue, (int)off, m);
                    return;
                }
            case Ld64Source.Func:
                regs[ins.Dst] = RegState.Pointer(RegType.PtrToFunc, 0, _info.SubprogOf(idx + ins.Imm + 1));
                return;
            default:
                throw Err("invalid bpf_ld_imm64 insn");
        }
    }

    // The kernel's resolve_pseudo_ldimm64: the map of a map reference, or no map at all.
    int MapIndex(Instruction ins)
    {
        int imm = ins.Imm;
        bool isFd = (Ld64Source)ins.Src is Ld64Source.MapFd or Ld64Source.MapValue;
        if (imm < 0 || imm >= _opt.Maps.Count || (isFd && !_opt.MapFdIsIndex)) throw Err($"fd {imm} is not pointing to valid bpf_map");
        return imm;
    }

    // The helpers whose prototypes set pkt_access: they may be given a pointer into the packet.
    static readonly HashSet<int> s_packetAccess = BaseFuncProto.Ids(
        ["map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem", "map_peek_elem", "map_lookup_percpu_elem"]);

    static bool HasPacketAccess(int helperId) => s_packetAccess.Contains(helperId);

    // The helpers record_func_map refuses on a BPF_F_RDONLY_PROG map.
    static readonly HashSet<int> s_changesMap = BaseFuncProto.Ids(["map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem"]);

    sealed class CallMeta
    {
        public int MapIndex = -1;
        public int RefObjId;
        public int ReleaseRegno;
        public int MemSize;
        public int LastMemRegno = -1;
        public long ConstKey = -1;
        public bool LastMemWrite;
        /// <summary>The largest value of the last size argument (msize_max_value).</summary>
        public ulong MsizeMax;
        /// <summary>The callback subprogram of a PTR_TO_FUNC argument, or -1.</summary>
        public int Subprog = -1;
        /// <summary>The register of a dynptr a release function (bpf_ringbuf_submit/discard_dynptr) releases, or 0.</summary>
        public int DynptrReleaseRegno;
        /// <summary>The reference of the dynptr argument (a RINGBUF dynptr's), which a slice of it carries; 0 for none.</summary>
        public int DynptrRefObjId;
        /// <summary>The id of the initialised dynptr argument's slots, which a slice of it carries (meta.dynptr_id); 0 for none.</summary>
        public int DynptrId;
        /// <summary>The kptr field bpf_kptr_xchg exchanges (meta.kptr_field), or null.</summary>
        public KptrField? Kptr;
        /// <summary>The bytes of an ARG_PTR_TO_CONST_STR argument from its offset to its NUL (check_reg_const_str), or null.</summary>
        public byte[]? ConstStr;
    }

    void CheckHelperCall(Instruction ins, int idx)
    {
        int id = ins.Imm;
        if (HelperNames.Name(id) == null) throw Err($"invalid func unknown#{id}");
        if (!_type.IsHelperAllowed(id)) throw Err($"program of this type cannot use helper {BaseFuncProto.Display(id)}");
        // check_helper_call: right after the helper is found, before its arguments are looked at.
        if (_type.IsGplOnly(id) && !BaseFuncProto.IsGplCompatible(_opt.License))
            throw Err("cannot call GPL-restricted function from non-GPL compatible program");
        // The type's func_proto may give the helper its own prototype (bpf_skb_load_bytes on an sk_reuseport_md); the
        // declaration then is the prototype, and the runtime's implementation is bound when an engine prepares the program.
        var typeProto = _type.HelperProto(id);
        Helper? helper = null;
        if (typeProto == null && !_helpers.TryGet(id, out helper))
            throw Err($"helper {BaseFuncProto.Display(id)} is not provided by this runtime");
        var proto = typeProto ?? helper!.Proto;
        // check_helper_call: no program type BpfJit loads is sleepable.
        if (proto.MightSleep) throw Err("helper call might sleep in a non-sleepable prog");
        string helperName = helper?.Name ?? HelperNames.Name(id)!;
        var meta = new CallMeta();
        for (int i = 0; i < proto.Args.Length; i++)
        {
            if (proto.Args[i] == ArgType.DontCare) continue;
            CheckFuncArg(i + 1, proto.Args[i], meta, id, helperName, proto);
        }
        // record_func_map: a map programs may only read (BPF_F_RDONLY_PROG) cannot be changed through a helper either.
        if (meta.MapIndex >= 0 && Map(meta.MapIndex).ProgramCannotWrite && s_changesMap.Contains(id)) throw Err("write into map forbidden");
        if (id == KernelHelpers.SnprintfId && meta.ConstStr is { } fmt) CheckSnprintfCall(fmt);
        if (meta.MapIndex >= 0 && HelperNames.Name(id) == "bpf_tail_call" && Map(meta.MapIndex).Type != MapType.ProgArray)
            throw Err("expected prog array map for tail call");
        // set_map_elem_callback_state looks at the map before check_map_func_compatibility does.
        if (meta.MapIndex >= 0 && id == KernelHelpers.ForEachMapElemId && !BaseFuncProto.MapCompatible(Map(meta.MapIndex).Type, id, _type.MayUpdateSockMap))
            throw Err("callback function not allowed for map");
        if (meta.MapIndex >= 0 && !BaseFuncProto.MapCompatible(Map(meta.MapIndex).Type, id, _type.MayUpdateSockMap))
            throw Err($"cannot pass map_type {(uint)Map(meta.MapIndex).Type} into func {BaseFuncProto.Display(id)}");
        if (meta.MapIndex < 0 && RequiresMap(proto))
            throw Err($"R1 type={RegName(Regs[1])} expected=map_ptr");
        RecordMapArg(idx, meta.MapIndex);
        if (meta.ReleaseRegno > 0)
        {
            if (meta.RefObjId != 0) ReleaseReference(meta.RefObjId);
            else if (!Regs[meta.ReleaseRegno].IsNull) throw Err($"R{meta.ReleaseRegno} must be referenced when passed to release function");
        }
        if (meta.DynptrReleaseRegno > 0) ReleaseDynptr(meta.DynptrReleaseRegno);
        // check_helper_call: a LOCAL dynptr is made only over a map value.
        if (id == KernelHelpers.DynptrFromMemId && Regs[1].Type != RegType.PtrToMapValue)
            throw Err($"Unsupported reg type {RegName(Regs[1])} for bpf_dynptr_from_mem data");
        if (helper?.Exit == HelperExit.TailCall || HelperNames.Name(id) == "bpf_tail_call")
        {
            if (_cur.Refs.Count > 0)
                throw Err(string.Join("\n", _cur.Refs.Select(r => $"Unreleased reference id={r.Id} alloc_insn={r.InsnIdx}")) + "\ntail_call would lead to reference leak");
            if (_cur.RcuLock) throw Err("tail_call cannot be used inside bpf_rcu_read_lock-ed region");
        }
        if (meta.Subprog >= 0 && id == KernelHelpers.TimerSetCallbackId) PushAsyncCallback(idx, meta);
        else if (meta.Subprog >= 0) PushCallback(idx, id, meta);
        var regs = Regs;
        for (int r = BpfAbi.FirstArgRegister; r <= BpfAbi.LastArgRegister; r++) regs[r] = RegState.NotInit;
        switch (proto.Ret)
        {
            case RetType.Void:
                regs[0] = RegState.NotInit;
                break;
            case RetType.Integer:
                regs[0] = RegState.Unknown();
                RefineReturnRange(ref regs[0], proto, meta);
                break;
            case RetType.PtrToMapValueOrNull:
                {
                    if (meta.MapIndex < 0) throw Err($"kernel subsystem misconfigured verifier: {helperName} returns a map value but takes no map");
                    var map = Map(meta.MapIndex);
                    // An array lookup with a constant in-range key cannot fail (can_elide_value_nullness), unless the
                    // array is an inner map whose size may differ from its template's (BPF_F_INNER_MAP).
                    if (HelperNames.Name(id) == "bpf_map_lookup_elem" && meta.ConstKey >= 0 && meta.ConstKey < map.MaxEntries
                        && (map.Flags & MapFlagInnerMap) == 0)
                    {
                        regs[0] = RegState.Pointer(RegType.PtrToMapValue, 0, meta.MapIndex);
                        // Each lookup is its own element for bpf_spin_unlock, even without a NULL check to keep an id.
                        if (map.SpinLockOffset >= 0) regs[0].Id = NewId();
                        break;
                    }
                    if (map.IsSockMap)
                    {
                        // A SOCKMAP/SOCKHASH element is a socket: the lookup acquires it (sock_or_null, like sk_lookup_tcp).
                        var sk = RegState.Pointer(RegType.PtrToSocketOrNull);
                        sk.Id = sk.RefObjId = NewId();
                        _cur.Refs.Add(new RefState(sk.Id, idx));
                        regs[0] = sk;
                        break;
                    }
                    var r0 = RegState.Pointer(RegType.PtrToMapValueOrNull, 0, meta.MapIndex);
                    r0.Id = NewId();
                    regs[0] = r0;
                    break;
                }
            case RetType.PtrToSocketOrNull:
                {
                    var r0 = RegState.Pointer(RegType.PtrToSocketOrNull);
                    r0.Id = r0.RefObjId = NewId();
                    _cur.Refs.Add(new RefState(r0.Id, idx));
                    regs[0] = r0;
                    break;
                }
            case RetType.TrustedPtrToTask:
                // RET_PTR_TO_BTF_ID (trusted): the current task_struct, never NULL.
                regs[0] = RegState.Pointer(RegType.PtrToBtfId, 0, BtfStruct(KernelStruct.TaskStruct));
                break;
            case RetType.PtrToBtfId or RetType.PtrToBtfIdOrNull:
                regs[0] = BtfIdResult(proto, meta, helperName);
                break;
            case RetType.KptrXchgOld:
                regs[0] = KptrXchgResult(meta, idx);
                break;
            case RetType.PtrToDynptrMemOrNull:
                {
                    // bpf_dynptr_data: len bytes of the dynptr's data (the constant size argument), or NULL.
                    var r0 = RegState.Pointer(RegType.PtrToArgMemOrNull, 0, meta.MemSize);
                    r0.Id = NewId();
                    r0.RefObjId = meta.DynptrRefObjId;
                    r0.DynptrId = meta.DynptrId;
                    regs[0] = r0;
                    break;
                }
            case RetType.PtrToRingbufMemOrNull:
                {
                    var r0 = RegState.Pointer(RegType.PtrToMemOrNull, 0, meta.MemSize);
                    r0.Id = r0.RefObjId = NewId();
                    _cur.Refs.Add(new RefState(r0.Id, idx));
                    regs[0] = r0;
                    break;
                }
        }
    }

    /// <summary>MAX_ERRNO: the most negative errno a helper returns.</summary>
    const int MaxErrno = 4095;

    /// <summary>
    /// do_refine_retval_range: what the helper's implementation guarantees about its scalar result. A result bounded
    /// by the CPU count is in [0, RetUmax]; one bounded by its size argument is a negated errno or at most that size.
    /// </summary>
    static void RefineReturnRange(ref RegState r0, HelperProto proto, CallMeta meta)
    {
        if (proto.RetUmax is { } umax)
        {
            r0.Umin = 0; r0.Umax = umax;
            r0.Smin = 0; r0.Smax = (long)umax;
            r0.U32Min = 0; r0.U32Max = (uint)Math.Min(umax, uint.MaxValue);
            r0.S32Min = 0; r0.S32Max = (int)Math.Min(umax, int.MaxValue);
            r0.Sync();
        }
        else if (proto.RetBoundedBySize)
        {
            r0.Smax = (long)meta.MsizeMax;
            r0.S32Max = (int)Math.Min(meta.MsizeMax, int.MaxValue);
            r0.Smin = -MaxErrno;
            r0.S32Min = -MaxErrno;
            r0.Sync();
        }
    }

    /// <summary>BPF_F_INNER_MAP: an inner ARRAY whose max_entries may differ from its template's.</summary>
    const uint MapFlagInnerMap = 1u << 12;

    static bool RequiresMap(HelperProto proto) =>
        proto.Args.Any(a => a is ArgType.PtrToMapKey or ArgType.PtrToMapValue or ArgType.PtrToUninitMapValue);

    void RecordMapArg(int idx, int map)
    {
        var f = _facts[idx];
        if (!f.MapArgSeen) { f.MapArg = map; f.MapArgSeen = true; }
        else if (f.MapArg != map) f.MapArg = -1;
    }

    void ReleaseReference(int refId)
    {
        int removed = _cur.Refs.RemoveAll(r => r.Id == refId);
        if (removed == 0) throw Err($"verifier internal error: reference id={refId} not found");
        _cur.ForEachReg((ref RegState r) =>
        {
            if (r.RefObjId == refId) r = RegState.Unknown();
        });
    }

    void TypeMismatch(int regno, string expected) =>
        throw Err($"R{regno} type={RegName(Regs[regno])} expected={expected}");

    void CheckFuncArg(int regno, ArgType arg, CallMeta meta, int helperId, string helperName, HelperProto proto)
    {
        CheckRead(regno);
        var reg = Regs[regno];
        if (arg == ArgType.Anything) return;
        bool mayBeNull = arg is ArgType.PtrToSocketOrNull or ArgType.PtrToMemOrNull or ArgType.PtrToWritableMemOrNull or ArgType.PtrToStackOrNull or ArgType.PtrToSockCommonOrNull
            or ArgType.PtrToBtfIdOrNull or ArgType.PtrToMapValueOrNull or ArgType.PtrToKptrOrNullRelease;
        // A NULL passed for a nullable pointer: pruned paths must pass NULL too (stricter than the kernel, difference 7).
        if (mayBeNull && reg.IsNull) MarkPrecise(regno);
        bool isMapValueArg = arg == ArgType.PtrToMapValue;
        // A sockmap/sockhash update takes a socket, not a value in memory (resolve_map_arg_type).
        if (isMapValueArg && meta.MapIndex >= 0 && Map(meta.MapIndex).IsSockMap)
        {
            if (reg.Type != RegType.PtrToSocket) TypeMismatch(regno, SockCommonTypes);
            return;
        }
        if (!(reg.IsNull && mayBeNull))
        {
            var type = mayBeNull ? RegTypeNames.NonNull(reg.Type) : reg.Type;
            switch (arg)
            {
                case ArgType.ConstMapPtr:
                    if (type != RegType.ConstPtrToMap) TypeMismatch(regno, "map_ptr");
                    // bpf_timer_init(timer, map): the map must be the timer's own (inner maps would compare map_uid).
                    if (meta.MapIndex >= 0 && meta.MapIndex != reg.Aux)
                        throw Err($"timer pointer in R1 map_uid=0 doesn't match map pointer in R{regno} map_uid=0");
                    break;
                case ArgType.PtrToCtx:
                    if (type != RegType.PtrToCtx) TypeMismatch(regno, "ctx");
                    if (reg.Off != 0 || !reg.VarOff.Equals(0UL)) throw Err($"dereference of modified ctx ptr R{regno} off={reg.Off} disallowed");
                    break;
                case ArgType.PtrToSocketOrNull:
                    if (type != RegType.PtrToSocket) TypeMismatch(regno, "sock");
                    break;
                case ArgType.PtrToSocket:
                    // sk_release's argument is ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE: a socket cast keeps the reference.
                    if (type == RegType.PtrToUntrustedBtfId) CheckBtfIdArg(regno, reg, ArgType.PtrToBtfIdSockCommon, proto, helperName);
                    else if (type != RegType.PtrToSocket) TypeMismatch(regno, SockCommonTypes);
                    break;
                case ArgType.PtrToSockCommonOrNull:
                    if (!RegTypeNames.IsSocket(type)) TypeMismatch(regno, SockCommonTypes);
                    break;
                case ArgType.PtrToPercpuBtfId:
                    // percpu_btf_ptr_types: none of them is a register type BpfJit gives (see ArgType.PtrToPercpuBtfId).
                    TypeMismatch(regno, "percpu_ptr_, percpu_rcu_ptr_, percpu_trusted_ptr_");
                    break;
                case ArgType.PtrToBtfIdSockCommon or ArgType.PtrToBtfId:
                    CheckBtfIdArg(regno, reg, arg, proto, helperName);
                    break;
                case ArgType.PtrToBtfIdOrNull:
                    // check_reg_type drops PTR_MAYBE_NULL from the register's type for an argument that may be NULL.
                    CheckBtfIdArg(regno, reg with { Type = type }, ArgType.PtrToBtfId, proto, helperName);
                    break;
                case ArgType.KptrXchgDest:
                    if (type != RegType.PtrToMapValue) TypeMismatch(regno, KptrXchgDestTypes);
                    ProcessKptrFunc(regno, reg, meta);
                    break;
                case ArgType.PtrToKptrOrNullRelease:
                    CheckKptrXchgValue(regno, reg, meta);
                    break;
                case ArgType.PtrToRingbufMem:
                    if (type != RegType.PtrToMem) TypeMismatch(regno, "ringbuf_mem");
                    if (reg.Off != 0 || !reg.VarOff.Equals(0UL)) throw Err($"R{regno} must have zero offset when passed to release func");
                    break;
                case ArgType.PtrToFunc:
                    if (type != RegType.PtrToFunc) TypeMismatch(regno, "func");
                    if (reg.Off != 0) throw Err($"dereference of modified func ptr R{regno} off={reg.Off} disallowed");
                    if (!reg.VarOff.Equals(0UL)) throw Err($"variable func access var_off={reg.VarOff} disallowed");
                    meta.Subprog = reg.Aux;
                    break;
                case ArgType.PtrToStackOrNull:
                    if (type != RegType.PtrToStack) TypeMismatch(regno, "fp");
                    break;
                case ArgType.PtrToDynptr or ArgType.PtrToUninitLocalDynptr or ArgType.PtrToUninitRingbufDynptr or ArgType.PtrToRingbufDynptrRelease:
                    if (type is not (RegType.PtrToStack or RegType.ConstPtrToDynptr)) TypeMismatch(regno, "fp, dynptr_ptr");
                    // __check_ptr_off_reg: the runtime's dynptr is passed as it was handed over.
                    if (type == RegType.ConstPtrToDynptr && reg.Off < 0) throw Err($"negative offset dynptr_ptr ptr R{regno} off={reg.Off} disallowed");
                    if (type == RegType.ConstPtrToDynptr && (reg.Off != 0 || !reg.VarOff.Equals(0UL)))
                        throw Err(reg.Off != 0 ? $"dereference of modified dynptr_ptr ptr R{regno} off={reg.Off} disallowed"
                            : $"variable dynptr_ptr access var_off={reg.VarOff} disallowed");
                    ProcessDynptrArg(regno, arg, meta);
                    break;
                case ArgType.PtrToTimer:
                    if (type != RegType.PtrToMapValue) TypeMismatch(regno, "map_value");
                    ProcessTimer(regno, reg, meta);
                    break;
                case ArgType.PtrToSpinLock:
                    if (type != RegType.PtrToMapValue) TypeMismatch(regno, "map_value, ptr_");
                    ProcessSpinLock(regno, reg, lockIt: helperId == KernelHelpers.SpinLockId);
                    break;
                case ArgType.PtrToConstStr:
                    if (type != RegType.PtrToMapValue) TypeMismatch(regno, "map_value");
                    meta.ConstStr = ConstString(regno, reg);
                    break;
                case ArgType.ConstSize or ArgType.ConstSizeOrZero or ArgType.ConstAllocSizeOrZero:
                    if (!reg.IsScalar) TypeMismatch(regno, "scalar");
                    break;
                case ArgType.PtrToMapKey or ArgType.PtrToMapValue or ArgType.PtrToMapValueOrNull or ArgType.PtrToUninitMapValue or ArgType.PtrToMem or ArgType.PtrToMemOrNull or ArgType.PtrToWritableMemOrNull
                    or ArgType.PtrToUninitMem or ArgType.PtrToAlignedLong:
                    if (type is not (RegType.PtrToStack or RegType.PtrToMapValue or RegType.PtrToMapKey or RegType.PtrToMem or RegType.PtrToArgMem or RegType.PtrToPacket))
                        TypeMismatch(regno, MemTypes);
                    break;
            }
            // A packet pointer goes only to a helper whose prototype has pkt_access (the map element helpers).
            if (reg.Type == RegType.PtrToPacket && !HasPacketAccess(helperId)) throw Err("helper access to the packet is not allowed");
        }
        // Release arguments (sk_release, ringbuf_submit/discard).
        if (arg is ArgType.PtrToSocket or ArgType.PtrToRingbufMem)
        {
            if (reg.RefObjId == 0 && !reg.IsNull) throw Err($"R{regno} must be referenced when passed to release function");
            meta.ReleaseRegno = regno;
        }
        if (reg.RefObjId != 0)
        {
            if (meta.RefObjId != 0) throw Err($"more than one arg with ref_obj_id R{regno} {reg.RefObjId} {meta.RefObjId}");
            meta.RefObjId = reg.RefObjId;
        }
        switch (arg)
        {
            case ArgType.ConstMapPtr:
                meta.MapIndex = reg.Aux;
                break;
            case ArgType.PtrToMapKey:
                if (meta.MapIndex < 0) throw Err("invalid map_ptr to access map->key");
                CheckHelperMem(regno, Map(meta.MapIndex).KeySize, write: false);
                if (Map(meta.MapIndex).Type is MapType.Array or MapType.PerCpuArray)
                    meta.ConstKey = ConstantMapKey(reg, Map(meta.MapIndex).KeySize);
                break;
            case ArgType.PtrToMapValue:
                if (meta.MapIndex < 0) throw Err("invalid map_ptr to access map->value");
                CheckHelperMem(regno, Map(meta.MapIndex).ValueSize, write: false);
                break;
            case ArgType.PtrToMapValueOrNull:
                if (reg.IsNull) break;
                if (meta.MapIndex < 0) throw Err("invalid map_ptr to access map->value");
                CheckHelperMem(regno, Map(meta.MapIndex).ValueSize, write: false);
                break;
            case ArgType.PtrToUninitMapValue:
                if (meta.MapIndex < 0) throw Err("invalid map_ptr to access map->value");
                CheckHelperMem(regno, Map(meta.MapIndex).ValueSize, write: true);
                break;
            case ArgType.PtrToAlignedLong:
                // A fixed-size result the helper writes: its bytes, then their alignment (check_ptr_alignment, strict).
                CheckHelperMem(regno, sizeof(long), write: true);
                CheckAlignment(Regs[regno], 0, sizeof(long), strict: true);
                break;
            case ArgType.PtrToMem or ArgType.PtrToMemOrNull or ArgType.PtrToUninitMem or ArgType.PtrToWritableMemOrNull:
                meta.LastMemRegno = regno;
                meta.LastMemWrite = arg is ArgType.PtrToUninitMem or ArgType.PtrToWritableMemOrNull;
                break;
            case ArgType.ConstSize or ArgType.ConstSizeOrZero:
                {
                    MarkPrecise(regno);
                    bool zeroOk = arg == ArgType.ConstSizeOrZero;
                    meta.MsizeMax = reg.Umax;
                    if (reg.Smin < 0) throw Err($"R{regno} min value is negative, either use unsigned or 'var &= const'");
                    if (reg.Umin == 0 && !zeroOk) throw Err($"R{regno} invalid zero-sized read: u64=[{reg.Umin},{reg.Umax}]");
                    if (reg.Umax >= 1UL << 29) throw Err($"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'");
                    if (meta.LastMemRegno >= 0 && reg.Umax > 0)
                        CheckHelperMem(meta.LastMemRegno, (int)reg.Umax, meta.LastMemWrite);
                    break;
                }
            case ArgType.ConstAllocSizeOrZero:
                MarkPrecise(regno);
                if (!reg.VarOff.IsConst) throw Err($"R{regno} is not a known constant'");
                meta.MemSize = (int)reg.VarOff.Value;
                break;
        }
    }

    /// <summary>
    /// check_bpf_snprintf_call: the format (R3, a constant string) must be valid for data_len / 8 arguments (R5), as
    /// bpf_bprintf_prepare decides; the kernel refuses a data_len that is not a multiple of 8 without a message.
    /// </summary>
    void CheckSnprintfCall(byte[] fmt)
    {
        ulong dataLen = Regs[5].VarOff.Value;
        if (dataLen % 8 != 0) throw Err("R5 (data_len) is not a multiple of 8");
        if (!TracePrintkFormat.IsValid(fmt, (int)Math.Min(dataLen / 8, int.MaxValue))) throw Err("Invalid format string");
    }

    /// <summary>
    /// check_reg_const_str: a string the verifier can read, in a read-only (BPF_F_RDONLY_PROG and frozen) map with direct
    /// value access (a single-entry ARRAY), at a constant offset, NUL-terminated within the value. Returns its bytes up
    /// to the NUL.
    /// </summary>
    byte[] ConstString(int regno, in RegState reg)
    {
        var map = Map(reg.Aux);
        // bpf_map_is_rdonly: BPF_F_RDONLY_PROG and frozen; the verifier is given the value of exactly those ARRAYs.
        if (map.FrozenValue is not { } value)
        {
            if (!map.ProgramCannotWrite || map.Type == MapType.Array) throw Err($"R{regno} does not point to a readonly map'");
            throw Err("no direct value access support for this map type");
        }
        if (!reg.VarOff.IsConst) throw Err($"R{regno} is not a constant address'");
        CheckMemRegion(regno, reg, reg.Off, map.ValueSize - reg.Off, map.ValueSize, zeroOk: false);
        int at = reg.Off + (int)(long)reg.VarOff.Value;
        int nul = Array.IndexOf(value, (byte)0, at);
        if (nul < 0) throw Err("string is not zero-terminated");
        return value[at..nul];
    }

    /// <summary>The key a stack pointer points at when it is a known constant (get_constant_map_key), else -1.</summary>
    long ConstantMapKey(in RegState key, int keySize)
    {
        if (key.Type != RegType.PtrToStack || !key.VarOff.IsConst) return -1;
        int stackOff = key.Off + (int)(long)key.VarOff.Value;
        int slot = -stackOff - 1, spi = slot / 8, off = slot % 8;
        var st = _cur.Frames[key.Frame].Stack;
        int zero = 0;
        for (int i = off; i >= 0 && st.Kind(spi, i) == SlotKind.Zero; i--) zero++;
        if (zero >= keySize) return 0;
        if (!st.IsSpilled(spi) || !st.Spilled[spi].IsScalar) return -1;
        int spill = 0;
        for (int i = off; i >= 0 && st.Kind(spi, i) == SlotKind.Spill; i--) spill++;
        if (spill != keySize) return -1;
        var v = st.Spilled[spi];
        if (!v.VarOff.IsConst) return -1;
        // The lookup's result is not NULL because of this key: it must stay this key on pruned paths.
        MarkSlotPrecise(key.Frame, spi);
        return (long)v.VarOff.Value;
    }

    /// <summary>check_helper_mem_access: the helper reads or writes <paramref name="size"/> bytes at the pointer.</summary>
    void CheckHelperMem(int regno, int size, bool write)
    {
        var reg = Regs[regno];
        if (size == 0) throw Err(write ? "invalid zero-sized write" : "invalid zero-sized read");
        switch (reg.Type)
        {
            case RegType.PtrToStack:
                {
                    var (min, max) = StackBounds(regno, reg, 0, size, write ? " write to" : " read from");
                    var frame = _cur.Frames[reg.Frame];
                    GrowStack(frame, min);
                    var st = frame.Stack;
                    for (long a = min; a < max; a++)
                    {
                        var (spi, k) = Locate((int)a);
                        if (write)
                        {
                            // check_stack_range_initialized (raw mode): a helper's output could alias a dynptr.
                            if (st.Kind(spi, k) == SlotKind.Dynptr) throw Err($"potential write to dynptr at off={a} disallowed");
                            ScrubByte(st, (int)a, SlotKind.Misc);
                            continue;
                        }
                        // A spilled pointer may be copied out (into a map too), as root may (allow_ptr_leaks).
                        var kind = st.Kind(spi, k);
                        if (kind is SlotKind.Iter or SlotKind.Dynptr)
                            throw Err(reg.VarOff.IsConst ? $"invalid read from stack R{regno} off {min}+{a - min} size {size}"
                                : $"invalid read from stack R{regno} var_off {reg.VarOff}+{a - min} size {size}");
                        if (kind == SlotKind.Invalid) NoteUninitRead(_cur.Insn);
                        if (kind == SlotKind.Spill && !st.Spilled[spi].IsScalar) _exposesAddress = true;
                    }
                    break;
                }
            case RegType.PtrToMapValue:
                {
                    var map = Map(reg.Aux);
                    if (write && map.ProgramCannotWrite) throw Err($"write into map forbidden, value_size={map.ValueSize} off={reg.Off} size={size}");
                    if (!write && map.ProgramCannotRead) throw Err($"read from map forbidden, value_size={map.ValueSize} off={reg.Off} size={size}");
                    CheckMemRegion(regno, reg, reg.Off, size, map.ValueSize, zeroOk: false);
                    CheckSpecialFields(regno, reg, reg.Off, size, byHelper: true);
                    break;
                }
            case RegType.PtrToMem or RegType.PtrToArgMem:
                CheckMemRegion(regno, reg, reg.Off, size, reg.Aux, zeroOk: false);
                break;
            case RegType.PtrToMapKey:
                if (write) throw Err($"R{regno} cannot write into {RegName(reg)}");
                CheckMemRegion(regno, reg, reg.Off, size, Map(reg.Aux).KeySize, zeroOk: false);
                break;
            case RegType.PtrToPacket:
                CheckPacketAccess(regno, reg, reg.Off, size);
                break;
            default:
                if (reg.IsNull) break;
                TypeMismatch(regno, MemTypes);
                break;
        }
    }
}
