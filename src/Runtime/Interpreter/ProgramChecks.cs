using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>
/// The checks every engine makes before it runs a program, whether or not it was verified: each
/// helper call names a helper the table has, no ld_imm64 still holds an unbound map reference, no
/// instruction is one that no engine runs (kfuncs BpfJit does not implement, legacy packet loads), and control cannot run
/// off the end. Both engines share this so that they accept exactly the same programs.
/// </summary>
public static class ProgramChecks
{
    /// <summary>Throws <see cref="BpfRuntimeException"/> for the first slot no engine can run; reports each helper call's target.</summary>
    /// <remarks>
    /// An ld_imm64 with BPF_PSEUDO_FUNC (a callback for bpf_loop or bpf_for_each_map_elem) is accepted when
    /// its target (slot + 1 + imm) is in the program and the engine passes <paramref name="onFunc"/>, which
    /// receives (slot, target) to bind it to a <see cref="Callbacks"/> handle. Map references must already be bound
    /// (<see cref="Maps.ProgramBinder"/>).
    /// </remarks>
    public static void CheckRunnable(IReadOnlyList<Instruction> program, HelperTable helpers, Action<int, Helper>? onHelperCall = null,
        Action<int, int>? onFunc = null)
    {
        ArgumentNullException.ThrowIfNull(program);
        // Read as an array: an array read through IReadOnlyList<Instruction> is framework generic code (SZArrayHelper)
        // that RyuJIT compiles at a process's first program (docs/perf.md, "Cold start").
        var insns = program as Instruction[] ?? [.. program];
        ArgumentNullException.ThrowIfNull(helpers);
        if (insns.Length == 0) throw new BpfRuntimeException(0, "empty program");
        Decoder.Validate(insns);
        for (int i = 0; i < insns.Length; i++)
        {
            var ins = insns[i];
            if (ins.IsLdImm64)
            {
                if (ins.Src == (byte)Ld64Source.Func)
                {
                    int target = i + 1 + ins.Imm;
                    if (target < 0 || target >= insns.Length || (target > 0 && insns[target - 1].IsLdImm64))
                        throw new BpfRuntimeException(i, $"callback target {target} is not an instruction of the program");
                    if (onFunc == null)
                        throw new BpfRuntimeException(i, "ld_imm64 with pseudo source Func: this engine does not bind callbacks");
                    onFunc(i, target);
                    i++;
                    continue;
                }
                if (ins.Src != (byte)Ld64Source.Imm)
                    throw new BpfRuntimeException(i, $"ld_imm64 with pseudo source {(Ld64Source)ins.Src} is not bound to a map or function");
                i++;
                continue;
            }
            if (ins.Class == InstructionClass.Ld)
                throw new BpfRuntimeException(i, "legacy packet access (LD_ABS/LD_IND) is not supported");
            if (ins.IsCall)
            {
                switch ((CallKind)ins.Src)
                {
                    case CallKind.Helper:
                        if (!helpers.TryGet(ins.Imm, out var h))
                            throw new BpfRuntimeException(i, $"invalid func unknown#{ins.Imm}");
                        onHelperCall?.Invoke(i, h);
                        break;
                    case CallKind.Kfunc:
                        // A kfunc BpfJit runs is called like a helper; its immediate is BpfJit's id (KfuncTable.Bind).
                        if (!KfuncTable.TryGet(ins.Imm, out var k))
                            throw new BpfRuntimeException(i, $"kfunc#{ins.Imm} is not a kernel function BpfJit runs");
                        onHelperCall?.Invoke(i, k);
                        break;
                }
            }
            if (ins.IsBranch || (ins.IsCall && ins.Src == (byte)CallKind.Local))
            {
                int target = i + 1 + (ins.IsCall ? ins.Imm : ins.BranchOffset);
                if (target < 0 || target >= insns.Length)
                    throw new BpfRuntimeException(i, $"jump out of range from insn {i} to {target}");
                if (target > 0 && insns[target - 1].IsLdImm64)
                    throw new BpfRuntimeException(i, $"jump into the middle of ld_imm64 at insn {target - 1}");
            }
        }
        var last = insns[^1];
        bool ends = last.IsExit || last.IsUnconditionalJump;
        if (!ends) throw new BpfRuntimeException(insns.Length - 1, "the last instruction must be exit or an unconditional jump");
    }
}
