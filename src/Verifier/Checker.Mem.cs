using BpfJit.Frontend;
using BpfJit.Runtime.ProgramTypes;

namespace BpfJit.Verifier;

/// <summary>Loads, stores and atomics (the kernel's check_mem_access and its per-type checks).</summary>
internal sealed partial class Checker
{
    void CheckLoad(Instruction ins, int idx)
    {
        CheckRead(ins.Src);
        CheckWrite(ins.Dst);
        int size = Op.Bytes(ins.MemSize);
        CheckMemAccess(idx, ins.Src, ins.Offset, size, write: false, valueRegno: ins.Dst, stImm: null, signExtend: ins.MemMode == MemMode.MemSx);
    }

    void CheckStore(Instruction ins, int idx)
    {
        int size = Op.Bytes(ins.MemSize);
        if (ins.Class == InstructionClass.Stx)
        {
            CheckRead(ins.Src);
            CheckRead(ins.Dst);
            CheckMemAccess(idx, ins.Dst, ins.Offset, size, write: true, valueRegno: ins.Src, stImm: null, signExtend: false);
        }
        else
        {
            CheckRead(ins.Dst);
            CheckMemAccess(idx, ins.Dst, ins.Offset, size, write: true, valueRegno: -1, stImm: ins.Imm, signExtend: false);
        }
    }

    void CheckAtomic(Instruction ins, int idx)
    {
        var op = (AtomicOp)ins.Imm;
        int size = Op.Bytes(ins.MemSize);
        CheckRead(ins.Src);
        CheckRead(ins.Dst);
        int loadReg = -1;
        if (op == AtomicOp.CmpXchg) { CheckRead(0); loadReg = 0; }
        else if ((ins.Imm & 1) != 0) loadReg = ins.Src;
        if (loadReg >= 0) CheckWrite(loadReg);
        var dst = Regs[ins.Dst];
        if (dst.Type is RegType.PtrToCtx or RegType.PtrToPacket || RegTypeNames.IsSocket(dst.Type))
            throw Err($"BPF_ATOMIC stores into R{ins.Dst} {RegName(dst)} is not allowed");
        if (Regs[ins.Src].IsPointer) _exposesAddress = true;
        // As the kernel's check_atomic_rmw: a read that goes to no register (which refuses a variable-offset stack
        // pointer), then for a fetch the real load (from the stack it returns what was stored there); the write
        // after it stores unknown data.
        CheckMemAccess(idx, ins.Dst, ins.Offset, size, write: false, valueRegno: -1, stImm: null, signExtend: false, atomic: true);
        if (loadReg >= 0)
            CheckMemAccess(idx, ins.Dst, ins.Offset, size, write: false, valueRegno: loadReg, stImm: null, signExtend: false, atomic: true);
        CheckMemAccess(idx, ins.Dst, ins.Offset, size, write: true, valueRegno: -1, stImm: null, signExtend: false, atomic: true);
    }

    /// <summary>One memory access through register <paramref name="regno"/>; a read sets <paramref name="valueRegno"/>.</summary>
    void CheckMemAccess(int idx, int regno, int off, int size, bool write, int valueRegno, int? stImm, bool signExtend, bool atomic = false)
    {
        var reg = Regs[regno];
        CheckMemAccessCore(idx, regno, reg, off, size, write, valueRegno, stImm, signExtend, atomic);
        SavePointerType(idx, reg);
    }

    /// <summary>
    /// The kernel's save_aux_ptr_type: one load or store instruction may be reached with different pointer
    /// types only when neither is ctx or a socket, whose accesses are rewritten per instruction (the JIT's
    /// context loads are too). Also records the map behind a map-value access, on every path.
    /// </summary>
    void SavePointerType(int idx, RegState reg)
    {
        var f = _facts[idx];
        var type = reg.Type;
        static bool MismatchOk(RegType t) => t is not (RegType.PtrToCtx or RegType.PtrToSocket or RegType.PtrToSocketOrNull
            or RegType.PtrToSockCommon or RegType.PtrToSockCommonOrNull);
        // Kernel objects are read with BPF_PROBE_MEM loads, decided per instruction: of any trust, but only them
        // (the kernel's allow_trust_mismatch for loads through PTR_TO_BTF_ID and untrusted memory).
        if (f.PtrTypeSeen is { } prev && prev != type && (RegTypeNames.IsProbeMem(prev) || RegTypeNames.IsProbeMem(type)))
        {
            if (!RegTypeNames.IsProbeMem(prev) || !RegTypeNames.IsProbeMem(type)) throw Err("same insn cannot be used with different pointers");
        }
        else if (f.PtrTypeSeen is { } prev2 && prev2 != type && (!MismatchOk(prev2) || !MismatchOk(type)))
            throw Err("same insn cannot be used with different pointers");
        f.PtrTypeSeen ??= type;
        if (!reg.VarOff.IsConst) f.VariableOffset = true;
        int map = type == RegType.PtrToMapValue ? reg.Aux : -1;
        if (!f.MemMapSeen) { f.MemMap = map; f.MemMapSeen = true; }
        else if (f.MemMap != map) f.MemMap = -1;
    }

    void CheckMemAccessCore(int idx, int regno, RegState reg, int off, int size, bool write, int valueRegno, int? stImm, bool signExtend, bool atomic)
    {
        CheckAlignment(reg, off, size, strict: atomic);
        RegState result = RegState.Unknown();
        bool resultSet = false;
        switch (reg.Type)
        {
            case RegType.PtrToMapValue:
                {
                    // As root (allow_ptr_leaks) a pointer may be stored: it is only bits there, read back as a scalar.
                    var map = Map(reg.Aux);
                    if (write && valueRegno >= 0 && Regs[valueRegno].IsPointer) _exposesAddress = true;
                    if (write && map.ProgramCannotWrite)
                        throw Err($"write into map forbidden, value_size={map.ValueSize} off={off + reg.Off} size={size}");
                    if (!write && map.ProgramCannotRead)
                        throw Err($"read from map forbidden, value_size={map.ValueSize} off={off + reg.Off} size={size}");
                    CheckMemRegion(regno, reg, off + reg.Off, size, map.ValueSize, zeroOk: false);
                    CheckSpecialFields(regno, reg, off + reg.Off, size, byHelper: false);
                    if (map.Kptrs != null && CheckMapKptrAccess(regno, reg, off, write, valueRegno, stImm, atomic) is { } kptr)
                    {
                        result = kptr;
                        resultSet = true;
                        break;
                    }
                    // A frozen read-only value at a constant offset is a known constant (the kernel's bpf_map_direct_read).
                    if (!write && !atomic && map.FrozenValue is { } frozen && reg.VarOff.IsConst && valueRegno >= 0)
                    {
                        long at = off + reg.Off + (long)reg.VarOff.Value;
                        if (at >= 0 && at + size <= frozen.Length)
                        {
                            ulong v = 0;
                            for (int b = size - 1; b >= 0; b--) v = (v << 8) | frozen[at + b];
                            result = RegState.Known(v);
                        }
                    }
                    break;
                }
            case RegType.PtrToMapKey:
                if (write) throw Err($"write to change key R{regno} not allowed");
                CheckMemRegion(regno, reg, off + reg.Off, size, Map(reg.Aux).KeySize, zeroOk: false);
                break;
            case RegType.PtrToRdonlyMem:
                if (write) throw Err($"R{regno} cannot write into {RegName(reg)}");
                CheckMemRegion(regno, reg, off + reg.Off, size, reg.Aux, zeroOk: false);
                break;
            case RegType.PtrToMem or RegType.PtrToArgMem:
                // As root the kernel lets a pointer be stored as data (allow_ptr_leaks); it reads back as a scalar.
                if (write && valueRegno >= 0 && Regs[valueRegno].IsPointer) _exposesAddress = true;
                CheckMemRegion(regno, reg, off + reg.Off, size, reg.Aux, zeroOk: false);
                break;
            case RegType.PtrToCtx:
                {
                    if (reg.Off != 0) throw Err($"dereference of modified ctx ptr R{regno} off={reg.Off} disallowed");
                    if (!reg.VarOff.Equals(0UL)) throw Err($"variable ctx access var_off={reg.VarOff} disallowed");
                    var field = _type.ContextAccess(off, size, write) ?? throw Err($"invalid bpf_context access off={off} size={size}");
                    var f = _facts[idx];
                    f.CtxField = field.Name;
                    f.CtxOffset = off;
                    var loaded = CtxLoad(field.Yields);
                    if (loaded != null) { result = loaded.Value; resultSet = true; }
                    break;
                }
            case RegType.PtrToSocket or RegType.PtrToSockCommon:
                if (write) throw Err($"R{regno} cannot write into {RegName(reg)}");
                if (reg.Smin < 0) throw Err($"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.");
                if (!(reg.Type == RegType.PtrToSocket ? ContextRules.BpfSockReadable(off + reg.Off, size) : ContextRules.SockCommonReadable(off + reg.Off, size)))
                    throw Err($"R{regno} invalid {RegName(reg)} access off={off + reg.Off} size={size}");
                break;
            case RegType.PtrToPacket:
                // may_access_direct_pkt_data: SK_REUSEPORT reads the packet but may not write it.
                if (write && _type.PacketAccess != PacketAccess.ReadWrite) throw Err("cannot write into packet");
                CheckPacketAccess(regno, reg, off + reg.Off, size);
                break;
            case RegType.PtrToStack:
                {
                    var r = CheckStackAccess(idx, regno, reg, off, size, write, valueRegno, stImm);
                    if (r != null) { result = r.Value; resultSet = true; }
                    break;
                }
            case RegType.PtrToBtfId or RegType.PtrToUntrustedBtfId or RegType.PtrToRcuBtfId or RegType.PtrToUntrustedFlagBtfId:
                // check_ptr_to_btf_access over the bundled kernel BTF; the engines read it as BPF_PROBE_MEM (Checker.BtfStruct.cs).
                result = CheckPtrToBtfAccess(regno, reg, off, size, write || atomic);
                resultSet = true;
                _facts[idx].ProbeMem = true;
                break;
            case RegType.PtrToRdonlyUntrustedMem:
                // Any offset, fixed or variable: the load is a BPF_PROBE_MEM load.
                if (write || atomic) throw Err($"R{regno} cannot write into {RegName(reg)}");
                _facts[idx].ProbeMem = true;
                break;
            default:
                throw Err($"R{regno} invalid mem access '{RegName(reg)}'");
        }
        if (write || valueRegno < 0) return;
        if (resultSet && result.IsPointer)
        {
            Regs[valueRegno] = result;
            return;
        }
        if (size < 8)
        {
            if (signExtend)
            {
                // A fill keeps the spilled register's link only while the load returns the same value:
                // sign extension changes a value whose sign bit at this size may be set.
                if (result.Umax >= 1UL << (size * 8 - 1)) { result.Id = 0; result.Off = 0; }
                ScalarAlu.SignExtend(ref result, size * 8, alu32: false);
            }
            else result = Truncated(result, size);
        }
        Regs[valueRegno] = result;
    }

    /// <summary>
    /// What a context load gives (check_ctx_access's reg_type): null for a scalar; a packet pointer starts with id 0
    /// and range 0, a nullable socket gets a fresh id for its NULL check.
    /// </summary>
    RegState? CtxLoad(CtxFieldKind kind)
    {
        RegState r;
        switch (kind)
        {
            case CtxFieldKind.PacketStart: return RegState.Pointer(RegType.PtrToPacket);
            case CtxFieldKind.PacketEnd: return RegState.Pointer(RegType.PtrToPacketEnd);
            case CtxFieldKind.Socket: return RegState.Pointer(RegType.PtrToSocket);
            case CtxFieldKind.SocketOrNull: r = RegState.Pointer(RegType.PtrToSocketOrNull); break;
            case CtxFieldKind.SockCommonOrNull: r = RegState.Pointer(RegType.PtrToSockCommonOrNull); break;
            default: return null;
        }
        r.Id = NewId();
        return r;
    }

    /// <summary>
    /// check_packet_access: a negative variable offset is refused; the fixed offset <paramref name="off"/> (the
    /// instruction's plus the register's) and the size must lie within the range a data_end compare proved
    /// (<see cref="RegState.Aux"/>). A range below zero (the pointer is at or past the end) allows nothing.
    /// </summary>
    void CheckPacketAccess(int regno, in RegState reg, int off, int size)
    {
        if (reg.Smin < 0) throw Err($"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.");
        int range = reg.Aux;
        if (range >= 0 && off >= 0 && size > 0 && (long)off + size <= range) return;
        string detail = range < 0 ? "" : $"invalid access to packet, off={off} size={size}, R{regno}(id={reg.Id},off={off},r={range})\n";
        throw Err($"{detail}R{regno} offset is outside of the packet");
    }

    /// <summary>check_ptr_alignment: stack accesses (and atomics everywhere) must be aligned to their size.</summary>
    void CheckAlignment(in RegState reg, int off, int size, bool strict)
    {
        string desc;
        switch (reg.Type)
        {
            case RegType.PtrToStack: desc = "stack "; strict = true; break;
            case RegType.PtrToMapValue: desc = "value "; break;
            case RegType.PtrToMem or RegType.PtrToArgMem or RegType.PtrToRdonlyMem: desc = ""; break;
            default: return;
        }
        if (!strict || size == 1) return;
        var at = reg.VarOff + Tnum.Const((ulong)(long)(reg.Off + off));
        if (at.IsAligned((ulong)size)) return;
        string tn = reg.VarOff.IsConst ? ((long)reg.VarOff.Value).ToString() : reg.VarOff.ToString();
        throw Err($"misaligned {desc}access off {tn}+{reg.Off}+{off} size {size}");
    }

    /// <summary>check_mem_region_access: every offset the pointer may have, plus the access, within [0, memSize).</summary>
    void CheckMemRegion(int regno, in RegState reg, int off, int size, int memSize, bool zeroOk)
    {
        if (reg.Smin < 0 && (reg.Smin == long.MinValue || off + reg.Smin != (int)(off + reg.Smin) || reg.Smin + off < 0))
            throw Err($"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.");
        CheckMemBounds(reg, reg.Smin + off, size, memSize, zeroOk, $"R{regno} min value is outside of the allowed memory range");
        if (reg.Umax >= (ulong)MaxVarOff)
            throw Err($"R{regno} unbounded memory access, make sure to bounds check any such access");
        CheckMemBounds(reg, (long)reg.Umax + off, size, memSize, zeroOk, $"R{regno} max value is outside of the allowed memory range");
    }

    void CheckMemBounds(in RegState reg, long off, int size, int memSize, bool zeroOk, string tail)
    {
        if (off >= 0 && (size > 0 || zeroOk) && off + size <= memSize) return;
        string what = reg.Type switch
        {
            RegType.PtrToMapValue => $"invalid access to map value, value_size={memSize} off={off} size={size}",
            RegType.PtrToMapKey => $"invalid access to map key, key_size={memSize} off={off} size={size}",
            _ => $"invalid access to memory, mem_size={memSize} off={off} size={size}",
        };
        throw Err(what + "\n" + tail);
    }

    /// <summary>Bounds of a stack access; returns (min, max) offsets relative to the frame pointer.</summary>
    (long Min, long Max) StackBounds(int regno, in RegState reg, int off, int size, string extra)
    {
        long min, max;
        if (reg.VarOff.IsConst)
        {
            min = (long)reg.VarOff.Value + reg.Off + off;
            max = min + size;
        }
        else
        {
            if (reg.Smax >= MaxVarOff || reg.Smin <= -MaxVarOff)
                throw Err($"invalid unbounded variable-offset{extra} stack R{regno}");
            min = reg.Smin + reg.Off + off;
            max = reg.Smax + reg.Off + off + size;
        }
        if (min < -BpfAbi.StackSize || min >= 0 || max > 0 || size < 0)
        {
            if (reg.VarOff.IsConst) throw Err($"invalid{extra} stack R{regno} off={reg.Off + off + (long)reg.VarOff.Value} size={size}");
            throw Err($"invalid variable-offset{extra} stack R{regno} var_off={reg.VarOff} off={reg.Off + off} size={size}");
        }
        return (min, max);
    }

    void GrowStack(FuncState frame, long min)
    {
        frame.Stack.Grow((int)-min);
        if (_stackDepth[frame.Subprog] < -min) _stackDepth[frame.Subprog] = (int)-min;
    }

    void NoteUninitRead(int idx)
    {
        _facts[idx].MayReadUninitStack = true;
        _uninitRead = true;
    }

    RegState? CheckStackAccess(int idx, int regno, in RegState reg, int off, int size, bool write, int valueRegno, int? stImm)
    {
        var frame = _cur.Frames[reg.Frame];
        var (min, max) = StackBounds(regno, reg, off, size, write ? " write to" : " read from");
        GrowStack(frame, min);
        var st = frame.Stack;
        if (!reg.VarOff.IsConst)
        {
            if (write)
            {
                StackWriteVarOff(st, min, max, valueRegno, stImm);
                return null;
            }
            // check_stack_read: a variable-offset read must fill a register; which slots an access that reads
            // into no register (an atomic's operand) touches is unknown, so it could not be tracked.
            if (valueRegno < 0)
                throw Err($"variable offset stack pointer cannot be passed into helper function; var_off={reg.VarOff} off={reg.Off + off} size={size}");
            bool allZero = true;
            for (long a = min; a < max; a++)
            {
                var (spi, k) = Locate((int)a);
                var kind = st.Kind(spi, k);
                if (kind is SlotKind.Iter or SlotKind.Dynptr) throw Err($"invalid read from stack R{regno} var_off {reg.VarOff}+{reg.Off + off} size {size}");
                if (kind == SlotKind.Invalid) NoteUninitRead(idx);
                if (kind == SlotKind.Spill && !st.Spilled[spi].IsScalar) _exposesAddress = true;
                if (kind != SlotKind.Zero) allZero = false;
            }
            return allZero ? RegState.Known(0) : RegState.Unknown();
        }
        int fixedOff = (int)min;
        if (write) { StackWriteFixed(frame, fixedOff, size, valueRegno, stImm); return null; }
        return StackReadFixed(idx, frame, fixedOff, size, valueRegno);
    }

    /// <summary>
    /// check_stack_write_var_off: any byte in [<paramref name="min"/>, <paramref name="max"/>) may be written, so
    /// each becomes unknown data, except that writing zero leaves zero bytes zero and spilled zero scalars in place.
    /// </summary>
    void StackWriteVarOff(StackState st, long min, long max, int valueRegno, int? stImm)
    {
        bool writingZero = valueRegno >= 0 ? Regs[valueRegno].IsNull : stImm == 0;
        bool zeroUsed = false;
        for (long a = min; a < max; a++)
        {
            var (spi, k) = Locate((int)a);
            DestroyIfDynptrSlot(st, spi);
            var kind = st.Kind(spi, k);
            if (writingZero && kind == SlotKind.Spill && st.Spilled[spi] is { IsScalar: true, IsNull: true })
            {
                zeroUsed = true;
                continue;
            }
            var newKind = SlotKind.Misc;
            if (writingZero && kind == SlotKind.Zero)
            {
                newKind = SlotKind.Zero;
                zeroUsed = true;
            }
            ScrubByte(st, (int)a, newKind);
        }
        // The slots record "zero", not the register: pruned paths must store zero too.
        if (zeroUsed && valueRegno >= 0) MarkPrecise(valueRegno);
    }

    /// <summary>Slot index and byte kind index of the stack byte at fp+<paramref name="addr"/> (negative).</summary>
    static (int Spi, int K) Locate(int addr)
    {
        int slot = -addr - 1;
        return (slot / 8, slot % 8);
    }

    void ScrubByte(StackState st, int addr, SlotKind kind)
    {
        var (spi, k) = Locate(addr);
        if (st.IsSpilled(spi))
        {
            // The rest of a spilled pointer's bytes stay behind as data.
            if (!st.Spilled[spi].IsScalar) _exposesAddress = true;
            for (int i = 0; i < 8; i++) if (st.Kind(spi, i) == SlotKind.Spill) st.SetKind(spi, i, SlotKind.Misc);
            st.Spilled[spi] = RegState.NotInit;
        }
        st.SetKind(spi, k, kind);
    }

    void StackWriteFixed(FuncState frame, int off, int size, int valueRegno, int? stImm)
    {
        var st = frame.Stack;
        int slot = -off - 1, spi = slot / 8;
        DestroyIfDynptrSlot(st, spi);
        // A narrower store over a spilled pointer leaves the rest of its bytes behind as data.
        if (size < 8 && st.IsSpilled(spi) && !st.Spilled[spi].IsScalar) _exposesAddress = true;
        RegState? v = valueRegno >= 0 ? Regs[valueRegno] : null;
        if (v is { IsScalar: true } sv && off % 8 == 0)
        {
            if (sv.Umax > (size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1)) { sv.Id = 0; sv.Off = 0; sv.Precise = false; }
            else
            {
                AssignIdBeforeMov(ref Regs[valueRegno]);
                sv = Regs[valueRegno];
            }
            SaveSpill(st, spi, sv, size);
            NoteStack(HistFlags.StackStore, frame.FrameNo, spi, valueRegno);
        }
        else if (v == null && stImm != null && off % 8 == 0)
        {
            SaveSpill(st, spi, RegState.Known((ulong)(long)stImm.Value), size);
            NoteStack(HistFlags.StackStore, frame.FrameNo, spi);
        }
        else if (v is { IsPointer: true } pv)
        {
            if (size != 8) throw Err("invalid size of register spill");
            if (frame != Frame && pv.Type == RegType.PtrToStack)
                throw Err("cannot spill pointers to stack into stack frame of the caller");
            SaveSpill(st, spi, pv, 8);
            NoteStack(HistFlags.StackStore, frame.FrameNo, spi);
        }
        else
        {
            bool zero = v is { IsNull: true } || (v == null && stImm == 0);
            // The slot records "zero", not the register: pruned paths must store zero too.
            if (zero && valueRegno >= 0) MarkPrecise(valueRegno);
            NoteStack(HistFlags.StackStore, frame.FrameNo, spi);
            var kind = zero ? SlotKind.Zero : SlotKind.Misc;
            if (st.IsSpilled(spi))
            {
                for (int i = 0; i < 8; i++) if (st.Kind(spi, i) == SlotKind.Spill) st.SetKind(spi, i, SlotKind.Misc);
                st.Spilled[spi] = RegState.NotInit;
            }
            for (int i = 0; i < size; i++) st.SetKind(spi, (slot - i) % 8, kind);
        }
    }

    static void SaveSpill(StackState st, int spi, RegState reg, int size)
    {
        reg.Precise = false;
        st.Spilled[spi] = reg;
        for (int i = 8; i > 8 - size; i--) st.SetKind(spi, i - 1, SlotKind.Spill);
        for (int i = 0; i < 8 - size; i++)
        {
            var k = st.Kind(spi, i);
            if (k is SlotKind.Zero or SlotKind.Invalid) continue;
            st.SetKind(spi, i, SlotKind.Misc);
        }
    }

    RegState? StackReadFixed(int idx, FuncState frame, int off, int size, int dstRegno)
    {
        var st = frame.Stack;
        int slot = -off - 1, spi = slot / 8;
        if (st.IsSpilled(spi))
        {
            int spillSize = 1;
            for (int i = 7; i > 0 && st.Kind(spi, i - 1) == SlotKind.Spill; i--) spillSize++;
            var reg = st.Spilled[spi];
            if (dstRegno >= 0) NoteStack(HistFlags.StackFill, frame.FrameNo, spi);
            if (size != 8 || spillSize != 8)
            {
                if (!reg.IsScalar) throw Err("invalid size of register fill");
                if (dstRegno < 0) return null;
                if (size <= spillSize && off % 8 == 0)
                {
                    var copy = reg;
                    copy.Precise = false;
                    if (reg.Umax > (size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1)) { copy.Id = 0; copy.Off = 0; }
                    return copy;
                }
                int spill = 0, zero = 0;
                for (int i = 0; i < size; i++)
                {
                    var kind = st.Kind(spi, (slot - i) % 8);
                    if (kind == SlotKind.Spill) spill++;
                    else if (kind == SlotKind.Zero) zero++;
                    else if (kind == SlotKind.Invalid) NoteUninitRead(idx);
                }
                if ((spill == size && reg.VarOff.Equals(0UL)) || zero == size) return RegState.Known(0);
                return RegState.Unknown();
            }
            if (dstRegno < 0) return null;
            reg.Precise = false;
            return reg;
        }
        bool allZero = true;
        for (int i = 0; i < size; i++)
        {
            var kind = st.Kind(spi, (slot - i) % 8);
            // An iterator's and a dynptr's bytes are the kernel's to read (check_stack_read_fixed_off).
            if (kind is SlotKind.Iter or SlotKind.Dynptr) throw Err($"invalid read from stack off {off}+{i} size {size}");
            if (kind == SlotKind.Invalid) NoteUninitRead(idx);
            if (kind != SlotKind.Zero) allZero = false;
        }
        if (dstRegno < 0) return null;
        return allZero ? RegState.Known(0) : RegState.Unknown();
    }
}
