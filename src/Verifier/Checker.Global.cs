using BpfJit.Frontend;

namespace BpfJit.Verifier;

/// <summary>
/// Global functions (BTF linkage global), as the kernel's check_func_call, btf_check_subprog_call and
/// do_check_subprogs treat them: a call is checked against the callee's BTF prototype and returns an
/// unknown scalar without entering the callee; each global function a verified path called is then
/// verified once, on its own, with its arguments typed from the prototype.
/// </summary>
internal sealed partial class Checker
{
    // Per subprogram, from BTF func_info; null when the program has none (every function is static then).
    FuncSignature[]? _sigs;
    bool[] _globalCalled = [];

    bool IsGlobal(int subprog) => _sigs != null && _sigs[subprog].IsGlobal;

    string SubprogName(int subprog) => _sigs?[subprog].Name ?? "";

    /// <summary>The kernel's check_btf_func: one func_info record per subprogram, at its start; the signatures.</summary>
    string? PrepareSignatures()
    {
        var infos = _opt.FuncInfos;
        if (infos == null || infos.Count == 0 || _opt.Btf == null) return null;
        var starts = _info.SubprogStarts;
        if (infos[0].InstructionOffset != 0) return $"nonzero insn_off {infos[0].InstructionOffset} for the first func info record";
        if (infos.Count != starts.Count) return "number of funcs in func_info doesn't match number of subprogs";
        var sigs = new FuncSignature[starts.Count];
        for (int i = 0; i < infos.Count; i++)
        {
            if (infos[i].InstructionOffset != starts[i]) return "func_info BTF section doesn't match subprog layout in BPF program";
            if (infos[i].TypeId >= _opt.Btf.Types.Count || _opt.Btf.Types[(int)infos[i].TypeId].Kind != Frontend.Btf.BtfKind.Func)
                return $"invalid type id {infos[i].TypeId}";
            sigs[i] = FuncSignature.Read(_opt.Btf, infos[i].TypeId);
        }
        _sigs = sigs;
        _globalCalled = new bool[starts.Count];
        return null;
    }

    /// <summary>
    /// A call of a global function: the arguments must match its prototype; the callee is not entered
    /// (it is verified on its own later), r1-r5 become unreadable and r0 an unknown scalar.
    /// </summary>
    void CallGlobal(int idx, int subprog)
    {
        var sig = _sigs![subprog];
        string? argError = sig.Error ?? CheckGlobalArgs(sig);
        if (_cur.LockMap >= 0)
            throw Err((argError != null ? argError + "\n" : "") + "global function calls are not allowed while holding a lock,\nuse static function instead");
        if (argError != null)
            throw Err($"{argError}\nCaller passes invalid args into func#{subprog} ('{sig.Name}')");
        if (Log2) _log.AppendLine($"Func#{subprog} ('{sig.Name}') is global and assumed valid.");
        _globalCalled[subprog] = true;
        var regs = Regs;
        for (int r = BpfAbi.FirstArgRegister; r <= BpfAbi.LastArgRegister; r++) regs[r] = RegState.NotInit;
        regs[0] = RegState.Unknown();
        _cur.Insn = idx + 1;
    }

    /// <summary>btf_check_func_arg_match: each argument register against the prototype; the kernel's message, or null.</summary>
    string? CheckGlobalArgs(FuncSignature sig)
    {
        try
        {
            for (int i = 0; i < sig.Args.Length; i++)
            {
                int regno = i + 1;
                var arg = sig.Args[i];
                var reg = Regs[regno];
                switch (arg.Kind)
                {
                    case FuncArgKind.Scalar:
                        if (!reg.IsScalar) return $"R{regno} is not a scalar";
                        break;
                    case FuncArgKind.Ctx:
                        CheckArgPtrOff(regno, reg);
                        if (reg.Type != RegType.PtrToCtx) return $"arg#{i} expects pointer to ctx";
                        break;
                    case FuncArgKind.Mem:
                        CheckArgPtrOff(regno, reg);
                        if (reg.IsNull)
                        {
                            // NULL is what a nullable argument allows; pruned paths must pass NULL
                            // too, or a pointer a later path passes would go unchecked.
                            MarkPrecise(regno);
                            if (!arg.MaybeNull) return $"arg#{i} is expected to be non-NULL";
                            break;
                        }
                        // The callee may read and write all of it (a spilled pointer it reads is data to it, as root may).
                        Regs[regno].Type = RegTypeNames.NonNull(reg.Type);
                        CheckHelperMem(regno, arg.MemSize, write: false);
                        CheckHelperMem(regno, arg.MemSize, write: true);
                        Regs[regno].Type = reg.Type;
                        if (!arg.MaybeNull && reg.IsNullable) return $"arg#{i} is expected to be non-NULL";
                        break;
                }
            }
            return null;
        }
        catch (VerifyError e)
        {
            return e.Message;
        }
    }

    /// <summary>check_func_arg_reg_off for an argument of any type: only memory pointers and scalars may carry an offset.</summary>
    void CheckArgPtrOff(int regno, in RegState reg)
    {
        if (reg.Type is RegType.PtrToStack or RegType.PtrToMapKey or RegType.PtrToMapValue or RegType.PtrToMem or RegType.PtrToArgMem or RegType.Scalar)
            return;
        if (reg.Type == RegType.NotInit) return;
        if (reg.Off != 0) throw Err($"dereference of modified {RegName(reg)} ptr R{regno} off={reg.Off} disallowed");
        if (!reg.VarOff.Equals(0UL)) throw Err($"variable {RegName(reg)} access var_off={reg.VarOff} disallowed");
    }

    /// <summary>The kernel's do_check_subprogs: verifies, each once and on its own, the global functions verified paths called.</summary>
    void VerifyCalledGlobals()
    {
        if (_sigs == null) return;
        var verified = new bool[_sigs.Length];
        bool progress = true;
        while (progress)
        {
            progress = false;
            for (int sp = 1; sp < _sigs.Length; sp++)
            {
                if (!_sigs[sp].IsGlobal || !_globalCalled[sp] || verified[sp]) continue;
                var sig = _sigs[sp];
                if (Log2) _log.AppendLine($"Validating {sig.Name}() func#{sp}...");
                if (sig.Error != null) throw Err(sig.Error);
                // Checkpoints of another function's run never match this one's frames; start afresh as the kernel does.
                _explored.Clear();
                _liveStates = 0;
                _cur = GlobalInitialState(sp, sig);
                Explore();
                if (_opt.LogLevel >= 1) _log.AppendLine($"Func#{sp} ('{sig.Name}') is safe for any args that match its prototype");
                verified[sp] = true;
                progress = true;
            }
        }
    }

    /// <summary>A global function's entry state: frame 0 with the arguments its prototype gives (do_check_common).</summary>
    VerifierState GlobalInitialState(int subprog, FuncSignature sig)
    {
        var s = new VerifierState { Insn = _info.SubprogStarts[subprog] };
        var f = new FuncState { FrameNo = 0, Subprog = subprog };
        for (int i = 0; i < sig.Args.Length; i++)
        {
            var arg = sig.Args[i];
            f.Regs[i + 1] = arg.Kind switch
            {
                FuncArgKind.Ctx => RegState.Pointer(RegType.PtrToCtx),
                FuncArgKind.Scalar => RegState.Unknown(),
                _ => RegState.Pointer(arg.MaybeNull ? RegType.PtrToArgMemOrNull : RegType.PtrToArgMem, 0, arg.MemSize),
            };
            if (arg.Kind == FuncArgKind.Mem && arg.MaybeNull) f.Regs[i + 1].Id = NewId();
        }
        f.Regs[10] = RegState.Pointer(RegType.PtrToStack);
        s.Frames.Add(f);
        return s;
    }
}
