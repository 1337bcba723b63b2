using BpfJit.Frontend;
using BpfJit.Runtime;

namespace BpfJit.IlEmitter.Emit;

/// <summary>
/// Without the verifier's facts the JIT cannot tell which loads read a kernel object: the facts mark them
/// (<see cref="SlotFacts.ProbeMem"/>, the kernel's BPF_PROBE_MEM) and the JIT compiles those to <c>KernelProbe</c>
/// reads. An unchecked compile without facts would load through a kernel BTF pointer raw, reading BpfJit's own socket
/// handle or context block as if it were the kernel's structure. So such a compile follows, per instruction, which registers may hold
/// such a pointer (from a helper that returns one, such as bpf_skc_to_tcp_sock or bpf_get_current_task_btf, or the
/// bpf_cast_to_kern_ctx kfunc) and refuses the program at the first access through one, or at a store, atomic or
/// bpf-to-bpf call that would carry one where this walk does not follow it. A program that only tests or returns
/// such a pointer compiles.
/// </summary>
internal static class KernelPointers
{
    /// <summary>Throws <see cref="BpfCompileException"/> at the first instruction that would use a kernel BTF pointer without facts.</summary>
    public static void Check(Instruction[] program, Helper?[] resolved)
    {
        var makers = new List<string>();
        for (int i = 0; i < program.Length; i++)
            if (program[i].IsCall && resolved[i] is { } h && Makes(program[i], h)) makers.Add($"{h.Name} at instruction {i}");
        if (makers.Count == 0) return;
        // in[i]: registers that may hold a kernel pointer on entry to slot i (bit r); seen[i]: slot i reached.
        var state = new ushort[program.Length];
        var seen = new bool[program.Length];
        var work = new Stack<int>();
        void Flow(int slot, int regs)
        {
            if (slot < 0 || slot >= program.Length) return;
            if (seen[slot] && (state[slot] | regs) == state[slot]) return;
            seen[slot] = true;
            state[slot] |= (ushort)regs;
            work.Push(slot);
        }
        Flow(0, 0);
        // Callbacks (bpf_loop, bpf_for_each_map_elem) start with their own registers, none a kernel pointer.
        for (int i = 0; i < program.Length; i++)
            if (program[i].IsLdImm64)
            {
                if (program[i].Src == (byte)Ld64Source.Func) Flow(i + 1 + program[i].Imm, 0);
                i++;
            }
        while (work.Count > 0)
        {
            int i = work.Pop();
            var ins = program[i];
            int regs = state[i];
            bool Has(int r) => (regs & (1 << r)) != 0;
            void Refuse(string what) => throw new BpfCompileException(i, Disassembler.Format(program, i),
                $"{what} a kernel BTF pointer (from {string.Join(", ", makers)}), which needs the verifier's facts (BPF_PROBE_MEM): " +
                "compile the verified program with its facts");
            switch (ins.Class)
            {
                case InstructionClass.Ld:
                    Flow(i + 2, regs & ~(1 << ins.Dst));
                    continue;
                case InstructionClass.Ldx:
                    if (Has(ins.Src)) Refuse("loads through");
                    Flow(i + 1, regs & ~(1 << ins.Dst));
                    continue;
                case InstructionClass.St:
                    if (Has(ins.Dst)) Refuse("stores through");
                    Flow(i + 1, regs);
                    continue;
                case InstructionClass.Stx:
                    if (Has(ins.Dst)) Refuse(ins.MemMode == MemMode.Atomic ? "an atomic operation through" : "stores through");
                    if (Has(ins.Src)) Refuse(ins.MemMode == MemMode.Atomic ? "an atomic operation with" : "stores");
                    // An atomic with fetch writes its source register (cmpxchg r0): loaded values, not kernel pointers.
                    Flow(i + 1, ins.MemMode == MemMode.Atomic ? regs & ~(1 << ins.Src) & ~1 : regs);
                    continue;
                case InstructionClass.Alu or InstructionClass.Alu64:
                    {
                        int dst = 1 << ins.Dst;
                        bool pointer = ins.AluOp == AluOp.Mov ? ins.SourceIsReg && Has(ins.Src) : Has(ins.Dst) || (ins.SourceIsReg && Has(ins.Src));
                        Flow(i + 1, pointer ? regs | dst : regs & ~dst);
                        continue;
                    }
            }
            if (ins.IsExit) continue;
            if (ins.IsCall)
            {
                const int args = 0b11_1110, r0 = 1;
                if (ins.Src == (byte)CallKind.Local)
                {
                    // The callee's frame starts from r1-r5; after it returns r0 may be what it made (no facts say).
                    if ((regs & args) != 0) Refuse("passes to a bpf-to-bpf call");
                    Flow(i + 1 + ins.Imm, 0);
                    Flow(i + 1, (regs & ~args) | r0);
                    continue;
                }
                bool makes = resolved[i] is { } h && Makes(ins, h);
                Flow(i + 1, (regs & ~args & ~r0) | (makes ? r0 : 0));
                continue;
            }
            if (ins.IsBranch)
            {
                Flow(i + 1 + ins.BranchOffset, regs);
                if (!ins.IsUnconditionalJump) Flow(i + 1, regs);
            }
        }
    }

    /// <summary>True when a call to <paramref name="h"/> returns a kernel BTF pointer.</summary>
    static bool Makes(Instruction call, Helper h) =>
        h.Proto.Ret is RetType.TrustedPtrToTask or RetType.PtrToBtfId or RetType.PtrToBtfIdOrNull
        || (call.Src == (byte)CallKind.Kfunc && h.Id == KfuncTable.CastToKernCtxId);
}
