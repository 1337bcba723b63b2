using System.Runtime.CompilerServices;
using BpfJit.Frontend;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

/// <summary>
/// The reference interpreter: runs a decoded program over native memory. r1-r5 carry the
/// arguments, r10 is the frame pointer of a 512-byte stack per frame, bpf-to-bpf calls nest up to
/// <see cref="BpfAbi.MaxCallFrames"/> frames with r6-r9 preserved, helpers come from a <see cref="HelperTable"/>.
/// Helper calls are resolved once, at construction; running is a tight dispatch loop over the slots.
/// It is memory-safe for any bytecode, verified or not: every load, store and atomic is checked against the
/// regions the program may touch, and every helper call's pointer arguments against its prototype, before
/// they happen; a failed check raises a <see cref="BpfFaultException"/> (docs/reliability.md, "The interpreter").
/// </summary>
public sealed unsafe class Interpreter
{
    // Short names for the dispatch loop; the ABI itself is BpfAbi's.
    internal const int StackSize = BpfAbi.StackSize;

    internal const int MaxFrames = BpfAbi.MaxCallFrames;

    readonly Instruction[] _code;
    readonly Instruction[] _exec;     // what runs: _code, with the stack accesses proven safe rewritten (StackAccesses)
    readonly CallSite[] _sites;       // the helper calls, in slot order: the helper and how its call is checked; the call's slot of _exec holds its number
    readonly HelperTable _table;
    readonly List<BpfCallback> _callbacks = [];   // keeps the Callbacks table's weak entries alive
    RegionBlock? _contextBlock;       // the registered block a run's r1 last pointed to (any thread's is as good a hint)
    readonly bool _mayLock;           // the program may take a bpf_spin_lock: a run checks it let go before it ends

    /// <summary>Prepares <paramref name="program"/>; throws <see cref="BpfRuntimeException"/> for a call to an unknown helper or an instruction no engine runs.</summary>
    public Interpreter(Instruction[] program, HelperTable helpers) : this(program, helpers, null)
    {
    }

    /// <summary>
    /// Prepares a verified <paramref name="program"/> with the <paramref name="facts"/> its verifier proved: the loads they
    /// mark as reading kernel objects read through <see cref="KernelProbe"/> (<see cref="ProbeLoads"/>).
    /// </summary>
    public Interpreter(Instruction[] program, HelperTable helpers, ProgramFacts? facts)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(helpers);
        _code = (Instruction[])program.Clone();
        _table = helpers;
        var sites = new List<CallSite>();
        ProgramChecks.CheckRunnable(program, helpers, (i, h) => sites.Add(new CallSite(h, HelperPlan.Of(h), i)), BindCallback);
        _sites = [.. sites];
        _mayLock = KernelHelpers.MayTakeLock(program);
        _exec = ProbeLoads.Rewrite(StackAccesses.Rewrite(_code, out _), facts);
        // A helper call's immediate becomes its site's number: the dispatch finds the site without dividing the slot's
        // address by the instruction's size. Only the interpreter's own copy changes; faults describe _code.
        if (_sites.Length > 0 && ReferenceEquals(_exec, _code)) _exec = (Instruction[])_code.Clone();
        for (int n = 0; n < _sites.Length; n++) _exec[_sites[n].Slot] = _exec[_sites[n].Slot] with { Imm = n };
    }

    /// <summary>Binds a BPF_PSEUDO_FUNC ld_imm64 at <paramref name="slot"/> to a callback that runs the subprogram at <paramref name="target"/>.</summary>
    void BindCallback(int slot, int target)
    {
        BpfCallback callback = (r1, r2, r3, r4, r5) => Execute(target, r1, r2, r3, r4, r5);
        _callbacks.Add(callback);
        ulong handle = Callbacks.Register(callback);
        _code[slot] = _code[slot] with { Src = (byte)Ld64Source.Imm, Imm = (int)(uint)handle };
        _code[slot + 1] = _code[slot + 1] with { Imm = (int)(uint)(handle >> 32) };
    }

    /// <summary>The program's slots.</summary>
    public ReadOnlySpan<Instruction> Program => _code;

    /// <summary>Runs the program with r1..r5 set and returns r0.</summary>
    public ulong Run(ulong r1 = 0, ulong r2 = 0, ulong r3 = 0, ulong r4 = 0, ulong r5 = 0)
    {
        ulong r0 = Execute(0, r1, r2, r3, r4, r5);
        if (_mayLock) KernelHelpers.FaultIfLockHeldAtExit();
        return r0;
    }

    /// <summary>Runs from slot <paramref name="entry"/> (0, or a callback subprogram) in a fresh set of frames.</summary>
    [SkipLocalsInit]
    ulong Execute(int entry, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        // The run's memory is one local of the method's own frame (RunMemory), not four stackallocs, each probed on every
        // run. The frames start on a cache line: the frame's zeroing is eight 64-byte stores, and on a misaligned frame
        // each of them split across two lines (and now and then across two pages), which made a trivial run's cost
        // depend on where the host stack happened to stand (docs/perf.md, "Fault containment").
        Unsafe.SkipInit(out RunMemory memory);
        byte* stack = (byte*)(((ulong)&memory + 63) & ~63UL);
        // Each frame is zeroed when it is entered: uninitialised stack must never expose host memory.
        new Span<byte>(stack, StackSize).Clear();
        ulong* reg = (ulong*)(stack + RunMemory.Registers);
        reg[0] = 0; reg[1] = r1; reg[2] = r2; reg[3] = r3; reg[4] = r4; reg[5] = r5;
        reg[6] = reg[7] = reg[8] = reg[9] = 0;
        reg[10] = (ulong)(stack + StackSize);
        ulong* saved = (ulong*)(stack + RunMemory.Saved);
        int* loops = (int*)(stack + RunMemory.Loops);
        loops[0] = Op.MayGotoBudget;
        // Memory safety (docs/reliability.md, "The interpreter"): an access must lie in the frames in use,
        // [stack, stack + FrameBytes) (tracked here, never taken from r10, which an unverified program may
        // overwrite), in a region of the small per-run cache, or in a region the registry finds (which then
        // joins the cache). Helpers see the whole stack block through the registry: a run announces it before the
        // first call that may look there (CallSite.Announces, or an argument check that asks the registry; a run whose
        // helpers' arguments are all known never pays for it); a callback announces it at once, since it
        // may reach its callers' stacks, whose announcements it must keep and whose successors' it must drop.
        bool callback = entry != 0;
        // Every field assigned once at its own width, not the struct zeroed first: a load of a field right after a
        // wide zeroing store that it only partly overlaps waits for that store (no store forwarding).
        Unsafe.SkipInit(out RunState run);
        run.StackStart = (ulong)stack;
        run.FrameBytes = StackSize;
        run.LastStart = (ulong)stack;
        run.LastLength = StackSize;
        run.Context = callback ? 0 : r1;
        run.Cache.Clear();
        run.LastSocket = 0;
        run.Callback = callback;
        run.Announced = false;
        run.Depth = 0;
        run.Saved = saved;
        run.Loops = loops;
        // The context block an earlier run found for this r1, while it is still registered: no registry walk for it.
        if (_contextBlock is { } ctx && ctx.Start == r1 && !callback && !ctx.Removed)
        {
            run.Cache.Seed(ctx.Start, ctx.Length);
            run.SetLast(ctx.Start, ctx.Length);
        }
        if (callback) Announce(ref run);
        // Inside the loop everything but the code, the instruction pointers and the registers is read from `run` (in
        // memory): every local live across the loop is one more register the dispatch would spill and reload in each
        // case, and the rare cases (calls, exit from a subprogram) run out of line, so the loop's own calls clobber fewer
        // registers.

        fixed (Instruction* code = _exec)
        {
            // The next slot, and the one running: each case reads only the fields it uses, where it uses them (decoding
            // every field up front kept the immediate and the offset live across the switch, spilled in every case).
            Instruction* next = code + entry;
            while (true)
            {
                Instruction* ins = next++;
                switch (ins->Opcode)
                {
                    // The cases follow the opcode table (Op, src/Frontend/Asm/OpcodeTable.cs) in its order; what each computes is
                    // Semantics', inlined. ALU64:
                    case Op.Add64Imm: reg[ins->Dst] = Semantics.Add64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Add64Reg: reg[ins->Dst] = Semantics.Add64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Sub64Imm: reg[ins->Dst] = Semantics.Sub64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Sub64Reg: reg[ins->Dst] = Semantics.Sub64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Mul64Imm: reg[ins->Dst] = Semantics.Mul64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Mul64Reg: reg[ins->Dst] = Semantics.Mul64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Div64Imm: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Div64(reg[ins->Dst], Imm(ins)) : Semantics.SDiv64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Div64Reg: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Div64(reg[ins->Dst], reg[ins->Src]) : Semantics.SDiv64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Or64Imm: reg[ins->Dst] = Semantics.Or64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Or64Reg: reg[ins->Dst] = Semantics.Or64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.And64Imm: reg[ins->Dst] = Semantics.And64(reg[ins->Dst], Imm(ins)); break;
                    case Op.And64Reg: reg[ins->Dst] = Semantics.And64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Lsh64Imm: reg[ins->Dst] = Semantics.Lsh64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Lsh64Reg: reg[ins->Dst] = Semantics.Lsh64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Rsh64Imm: reg[ins->Dst] = Semantics.Rsh64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Rsh64Reg: reg[ins->Dst] = Semantics.Rsh64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Neg64: reg[ins->Dst] = Semantics.Neg64(reg[ins->Dst]); break;
                    case Op.Mod64Imm: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Mod64(reg[ins->Dst], Imm(ins)) : Semantics.SMod64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Mod64Reg: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Mod64(reg[ins->Dst], reg[ins->Src]) : Semantics.SMod64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Xor64Imm: reg[ins->Dst] = Semantics.Xor64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Xor64Reg: reg[ins->Dst] = Semantics.Xor64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Mov64Imm: reg[ins->Dst] = Imm(ins); break;
                    case Op.Mov64Reg: reg[ins->Dst] = Semantics.MovSx64(reg[ins->Src], ins->Offset); break;
                    case Op.Arsh64Imm: reg[ins->Dst] = Semantics.Arsh64(reg[ins->Dst], Imm(ins)); break;
                    case Op.Arsh64Reg: reg[ins->Dst] = Semantics.Arsh64(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Bswap: reg[ins->Dst] = Semantics.Bswap(reg[ins->Dst], ins->Imm); break;

                    // ALU: 32-bit, results zero-extended
                    case Op.Add32Imm: reg[ins->Dst] = Semantics.Add32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Add32Reg: reg[ins->Dst] = Semantics.Add32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Sub32Imm: reg[ins->Dst] = Semantics.Sub32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Sub32Reg: reg[ins->Dst] = Semantics.Sub32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Mul32Imm: reg[ins->Dst] = Semantics.Mul32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Mul32Reg: reg[ins->Dst] = Semantics.Mul32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Div32Imm: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Div32(reg[ins->Dst], Imm(ins)) : Semantics.SDiv32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Div32Reg: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Div32(reg[ins->Dst], reg[ins->Src]) : Semantics.SDiv32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Or32Imm: reg[ins->Dst] = Semantics.Or32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Or32Reg: reg[ins->Dst] = Semantics.Or32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.And32Imm: reg[ins->Dst] = Semantics.And32(reg[ins->Dst], Imm(ins)); break;
                    case Op.And32Reg: reg[ins->Dst] = Semantics.And32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Lsh32Imm: reg[ins->Dst] = Semantics.Lsh32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Lsh32Reg: reg[ins->Dst] = Semantics.Lsh32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Rsh32Imm: reg[ins->Dst] = Semantics.Rsh32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Rsh32Reg: reg[ins->Dst] = Semantics.Rsh32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Neg32: reg[ins->Dst] = Semantics.Neg32(reg[ins->Dst]); break;
                    case Op.Mod32Imm: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Mod32(reg[ins->Dst], Imm(ins)) : Semantics.SMod32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Mod32Reg: reg[ins->Dst] = ins->Offset == 0 ? Semantics.Mod32(reg[ins->Dst], reg[ins->Src]) : Semantics.SMod32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Xor32Imm: reg[ins->Dst] = Semantics.Xor32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Xor32Reg: reg[ins->Dst] = Semantics.Xor32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Mov32Imm: reg[ins->Dst] = Semantics.Mov32(Imm(ins)); break;
                    case Op.Mov32Reg: reg[ins->Dst] = Semantics.MovSx32(reg[ins->Src], ins->Offset); break;
                    case Op.Arsh32Imm: reg[ins->Dst] = Semantics.Arsh32(reg[ins->Dst], Imm(ins)); break;
                    case Op.Arsh32Reg: reg[ins->Dst] = Semantics.Arsh32(reg[ins->Dst], reg[ins->Src]); break;
                    case Op.Le: reg[ins->Dst] = Semantics.Le(reg[ins->Dst], ins->Imm); break;
                    case Op.Be: reg[ins->Dst] = Semantics.Bswap(reg[ins->Dst], ins->Imm); break;

                    // JMP: 64-bit comparisons, calls and exit
                    case Op.Ja: next += ins->Offset; break;
                    case Op.JeqImm: if (Semantics.Jeq(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JeqReg: if (Semantics.Jeq(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JgtImm: if (Semantics.Jgt(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JgtReg: if (Semantics.Jgt(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JgeImm: if (Semantics.Jge(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JgeReg: if (Semantics.Jge(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JsetImm: if (Semantics.Jset(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JsetReg: if (Semantics.Jset(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JneImm: if (Semantics.Jne(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JneReg: if (Semantics.Jne(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JsgtImm: if (Semantics.Jsgt(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JsgtReg: if (Semantics.Jsgt(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JsgeImm: if (Semantics.Jsge(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JsgeReg: if (Semantics.Jsge(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Call:
                        if (ins->Src == (byte)CallKind.Local) { next = EnterFrame(ref run, reg, code, ins); break; }
                        {
                            CallSite site = _sites[ins->Imm];
                            // A plain helper (nothing to check) is called from here: no frame of CallAt's per call.
                            if (site.Shape == CallShape.Plain && !site.Exits && (!site.Announces || run.Announced))
                                reg[0] = site.Function(reg[1], reg[2], reg[3], reg[4], reg[5]);
                            else if (CallAt(site, reg, ref run))
                                return Return(run.Callback, run.StackStart, reg[0]);
                        }
                        break;
                    case Op.CallX:
                        if (CallX((int)(ins - code), reg, ins->Dst, ref run)) return Return(run.Callback, run.StackStart, reg[0]);
                        break;
                    case Op.Exit:
                        // The main frame alone is in use (FrameBytes, assigned at entry, not Depth, which only the
                        // struct's zeroing wrote: a load right after that wide store waits for it).
                        if (run.FrameBytes == StackSize) return Return(run.Callback, run.StackStart, reg[0]);
                        next = LeaveFrame(ref run, reg, code);
                        break;
                    case Op.JltImm: if (Semantics.Jlt(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JltReg: if (Semantics.Jlt(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JleImm: if (Semantics.Jle(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JleReg: if (Semantics.Jle(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JsltImm: if (Semantics.Jslt(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JsltReg: if (Semantics.Jslt(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.JsleImm: if (Semantics.Jsle(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.JsleReg: if (Semantics.Jsle(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.MayGoto: if (run.Loops[run.Depth] == 0) next += ins->Offset; else run.Loops[run.Depth]--; break;

                    // JMP32: 32-bit comparisons
                    case Op.Ja32: next += ins->Imm; break;
                    case Op.Jeq32Imm: if (Semantics.Jeq32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jeq32Reg: if (Semantics.Jeq32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jgt32Imm: if (Semantics.Jgt32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jgt32Reg: if (Semantics.Jgt32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jge32Imm: if (Semantics.Jge32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jge32Reg: if (Semantics.Jge32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jset32Imm: if (Semantics.Jset32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jset32Reg: if (Semantics.Jset32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jne32Imm: if (Semantics.Jne32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jne32Reg: if (Semantics.Jne32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jsgt32Imm: if (Semantics.Jsgt32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jsgt32Reg: if (Semantics.Jsgt32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jsge32Imm: if (Semantics.Jsge32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jsge32Reg: if (Semantics.Jsge32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jlt32Imm: if (Semantics.Jlt32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jlt32Reg: if (Semantics.Jlt32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jle32Imm: if (Semantics.Jle32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jle32Reg: if (Semantics.Jle32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jslt32Imm: if (Semantics.Jslt32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jslt32Reg: if (Semantics.Jslt32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;
                    case Op.Jsle32Imm: if (Semantics.Jsle32(reg[ins->Dst], Imm(ins))) next += ins->Offset; break;
                    case Op.Jsle32Reg: if (Semantics.Jsle32(reg[ins->Dst], reg[ins->Src])) next += ins->Offset; break;

                    // LD: ld_imm64, two slots
                    case Op.LdImm64:
                        reg[ins->Dst] = ins->Imm64(*next);
                        next++;
                        break;

                    // LDX, ST, STX: every access checked (Check)
                    case Op.LdxW: reg[ins->Dst] = Unsafe.ReadUnaligned<uint>((void*)Check(ref run, reg[ins->Src], ins->Offset, 4, ins, code, MemoryAccess.Load)); break;
                    case Op.LdxH: reg[ins->Dst] = Unsafe.ReadUnaligned<ushort>((void*)Check(ref run, reg[ins->Src], ins->Offset, 2, ins, code, MemoryAccess.Load)); break;
                    case Op.LdxB: reg[ins->Dst] = *(byte*)Check(ref run, reg[ins->Src], ins->Offset, 1, ins, code, MemoryAccess.Load); break;
                    case Op.LdxDW: reg[ins->Dst] = Unsafe.ReadUnaligned<ulong>((void*)Check(ref run, reg[ins->Src], ins->Offset, 8, ins, code, MemoryAccess.Load)); break;
                    case Op.LdxSW: reg[ins->Dst] = Semantics.SignExtend(Unsafe.ReadUnaligned<int>((void*)Check(ref run, reg[ins->Src], ins->Offset, 4, ins, code, MemoryAccess.Load))); break;
                    case Op.LdxSH: reg[ins->Dst] = Semantics.SignExtend(Unsafe.ReadUnaligned<short>((void*)Check(ref run, reg[ins->Src], ins->Offset, 2, ins, code, MemoryAccess.Load))); break;
                    case Op.LdxSB: reg[ins->Dst] = Semantics.SignExtend(*(sbyte*)Check(ref run, reg[ins->Src], ins->Offset, 1, ins, code, MemoryAccess.Load)); break;
                    case Op.StW: Unsafe.WriteUnaligned((void*)Check(ref run, reg[ins->Dst], ins->Offset, 4, ins, code, MemoryAccess.Store), (uint)Imm(ins)); break;
                    case Op.StH: Unsafe.WriteUnaligned((void*)Check(ref run, reg[ins->Dst], ins->Offset, 2, ins, code, MemoryAccess.Store), (ushort)Imm(ins)); break;
                    case Op.StB: *(byte*)Check(ref run, reg[ins->Dst], ins->Offset, 1, ins, code, MemoryAccess.Store) = (byte)Imm(ins); break;
                    case Op.StDW: Unsafe.WriteUnaligned((void*)Check(ref run, reg[ins->Dst], ins->Offset, 8, ins, code, MemoryAccess.Store), Imm(ins)); break;
                    case Op.StxW: Unsafe.WriteUnaligned((void*)Check(ref run, reg[ins->Dst], ins->Offset, 4, ins, code, MemoryAccess.Store), (uint)reg[ins->Src]); break;
                    case Op.StxH: Unsafe.WriteUnaligned((void*)Check(ref run, reg[ins->Dst], ins->Offset, 2, ins, code, MemoryAccess.Store), (ushort)reg[ins->Src]); break;
                    case Op.StxB: *(byte*)Check(ref run, reg[ins->Dst], ins->Offset, 1, ins, code, MemoryAccess.Store) = (byte)reg[ins->Src]; break;
                    case Op.StxDW: Unsafe.WriteUnaligned((void*)Check(ref run, reg[ins->Dst], ins->Offset, 8, ins, code, MemoryAccess.Store), reg[ins->Src]); break;
                    case Op.AtomicW or Op.AtomicDW:
                        {
                            bool is64 = ins->Opcode == Op.AtomicDW;
                            int width = is64 ? 8 : 4;
                            ulong address = Check(ref run, reg[ins->Dst], ins->Offset, width, ins, code, MemoryAccess.Atomic);
                            ulong old = Semantics.Atomic(ins->Imm, is64, address, reg[ins->Src], reg[0]);
                            if (ins->Imm == (int)AtomicOp.CmpXchg) reg[0] = old;
                            else if ((ins->Imm & 1) != 0) reg[ins->Src] = old;
                            break;
                        }

                    // BPF_PROBE_MEM loads of kernel objects (ProbeLoads): the image, or 0
                    case ProbeLoads.LoadW: reg[ins->Dst] = KernelProbe.Load(reg[ins->Src] + (ulong)(long)ins->Offset, 4); break;
                    case ProbeLoads.LoadH: reg[ins->Dst] = KernelProbe.Load(reg[ins->Src] + (ulong)(long)ins->Offset, 2); break;
                    case ProbeLoads.LoadB: reg[ins->Dst] = KernelProbe.Load(reg[ins->Src] + (ulong)(long)ins->Offset, 1); break;
                    case ProbeLoads.LoadDW: reg[ins->Dst] = KernelProbe.Load(reg[ins->Src] + (ulong)(long)ins->Offset, 8); break;
                    case ProbeLoads.LoadSW: reg[ins->Dst] = KernelProbe.LoadSigned(reg[ins->Src] + (ulong)(long)ins->Offset, 4); break;
                    case ProbeLoads.LoadSH: reg[ins->Dst] = KernelProbe.LoadSigned(reg[ins->Src] + (ulong)(long)ins->Offset, 2); break;
                    case ProbeLoads.LoadSB: reg[ins->Dst] = KernelProbe.LoadSigned(reg[ins->Src] + (ulong)(long)ins->Offset, 1); break;

                    // Stack accesses proven inside the current frame (StackAccesses): no check
                    case StackAccesses.LoadW: reg[ins->Dst] = Unsafe.ReadUnaligned<uint>((void*)(reg[10] + (ulong)(long)ins->Offset)); break;
                    case StackAccesses.LoadH: reg[ins->Dst] = Unsafe.ReadUnaligned<ushort>((void*)(reg[10] + (ulong)(long)ins->Offset)); break;
                    case StackAccesses.LoadB: reg[ins->Dst] = *(byte*)(reg[10] + (ulong)(long)ins->Offset); break;
                    case StackAccesses.LoadDW: reg[ins->Dst] = Unsafe.ReadUnaligned<ulong>((void*)(reg[10] + (ulong)(long)ins->Offset)); break;
                    case StackAccesses.LoadSW: reg[ins->Dst] = Semantics.SignExtend(Unsafe.ReadUnaligned<int>((void*)(reg[10] + (ulong)(long)ins->Offset))); break;
                    case StackAccesses.LoadSH: reg[ins->Dst] = Semantics.SignExtend(Unsafe.ReadUnaligned<short>((void*)(reg[10] + (ulong)(long)ins->Offset))); break;
                    case StackAccesses.LoadSB: reg[ins->Dst] = Semantics.SignExtend(*(sbyte*)(reg[10] + (ulong)(long)ins->Offset)); break;
                    case StackAccesses.StoreImmW: Unsafe.WriteUnaligned((void*)(reg[10] + (ulong)(long)ins->Offset), (uint)Imm(ins)); break;
                    case StackAccesses.StoreImmH: Unsafe.WriteUnaligned((void*)(reg[10] + (ulong)(long)ins->Offset), (ushort)Imm(ins)); break;
                    case StackAccesses.StoreImmB: *(byte*)(reg[10] + (ulong)(long)ins->Offset) = (byte)Imm(ins); break;
                    case StackAccesses.StoreImmDW: Unsafe.WriteUnaligned((void*)(reg[10] + (ulong)(long)ins->Offset), Imm(ins)); break;
                    case StackAccesses.StoreW: Unsafe.WriteUnaligned((void*)(reg[10] + (ulong)(long)ins->Offset), (uint)reg[ins->Src]); break;
                    case StackAccesses.StoreH: Unsafe.WriteUnaligned((void*)(reg[10] + (ulong)(long)ins->Offset), (ushort)reg[ins->Src]); break;
                    case StackAccesses.StoreB: *(byte*)(reg[10] + (ulong)(long)ins->Offset) = (byte)reg[ins->Src]; break;
                    case StackAccesses.StoreDW: Unsafe.WriteUnaligned((void*)(reg[10] + (ulong)(long)ins->Offset), reg[ins->Src]); break;

                    default:
                        throw Unsupported((int)(ins - code), ins->Opcode);
                }
            }
        }
    }

    // Out of line: the string formatting would otherwise put its locals in the dispatch loop's frame.
    [MethodImpl(MethodImplOptions.NoInlining)]
    static BpfRuntimeException Unsupported(int index, byte opcode) => new(index, $"unsupported instruction 0x{opcode:x2}");

    /// <summary>
    /// The address <paramref name="base"/> + <paramref name="offset"/> of a <paramref name="size"/>-byte access, checked
    /// inline against the frames in use and the region the run last touched, one subtraction and one unsigned compare
    /// each (an address below a region wraps to a huge offset); anything else goes to <see cref="Slow"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong Check(ref RunState run, ulong @base, short offset, int size, Instruction* ins, Instruction* code, MemoryAccess access)
    {
        ulong address = @base + (ulong)(long)offset;
        // FrameBytes and LastLength are at least 8 bytes (RunState), so neither bound minus size wraps.
        if (address - run.StackStart > run.FrameBytes - (ulong)size && address - run.LastStart > run.LastLength - (ulong)size)
            Slow(ref run, address, size, (int)(ins - code), access);
        return address;
    }

    /// <summary>The sign-extended immediate of <paramref name="ins"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Imm(Instruction* ins) => (ulong)(long)ins->Imm;

    /// <summary>The out-of-line part of an access check: the run's cache, then the registry (<see cref="Miss"/>); the region found becomes the last one.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    void Slow(ref RunState run, ulong address, int size, int index, MemoryAccess access)
    {
        if (!run.Cache.Find(address, size, out ulong start, out long length))
            (start, length) = Miss(ref run, address, size, index, access);
        run.SetLast(start, length);
    }

    /// <summary>
    /// Slow path of an access check: the registry; a hit joins the cache, a miss is the fault. The program may
    /// touch only the frames in use of its own stack block, which the fast path has already tested, so an access
    /// elsewhere in that block is a fault. Only a callback looks for stacks in the registry (its callers' stacks,
    /// which they announced); a run started from outside has no other stack to reach, and the registry's list of
    /// this thread's stacks may still hold earlier runs' until this run announces its own.
    /// </summary>
    (ulong Start, long Length) Miss(ref RunState run, ulong address, int size, int index, MemoryAccess access)
    {
        if (address - run.StackStart < StackSize * MaxFrames)
        {
            ulong end = run.StackStart + run.FrameBytes;
            string where = address >= end ? $"{address - end} byte(s) past its end" : $"the access starts at +{address - run.StackStart} and runs past its end";
            throw new BpfCheckedModeException(index, BpfFaultException.Describe(_code, index), access.ToString().ToLowerInvariant(), address, size,
                $"nearest region: stack frames in use [0x{run.StackStart:x}, +{run.FrameBytes}), {where}");
        }
        if (!MemoryRegions.TryFind(address, size, run.Callback, out ulong start, out int length))
            throw MemoryRegions.Fault(address, size, run.Callback, _code, index, access);
        run.Cache.Add(start, length);
        // The block the run's context points to: the next run on the same block starts with it as its last region.
        if (start == run.Context && !run.Callback && MemoryRegions.BlockAt(start) is { } block) _contextBlock = block;
        return (start, length);
    }

    /// <summary>Announces the run's stack block to the registry (MemoryRegions.EnterStack), where helpers and callbacks look for it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Announce(ref RunState run)
    {
        MemoryRegions.EnterStack(run.StackStart, StackSize * MaxFrames, run.Callback);
        run.Announced = true;
    }

    /// <summary>A bpf-to-bpf call at <paramref name="ins"/>: saves r6-r9 and the return slot, enters a zeroed frame; returns the callee's first slot.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static Instruction* EnterFrame(ref RunState run, ulong* reg, Instruction* code, Instruction* ins)
    {
        int pc = (int)(ins - code) + 1;
        if (run.Depth + 1 >= MaxFrames)
            throw new BpfRuntimeException(pc - 1, $"call stack overflow: more than {MaxFrames} frames");
        ulong* frame = run.Saved + 5 * run.Depth;
        frame[0] = reg[6]; frame[1] = reg[7]; frame[2] = reg[8]; frame[3] = reg[9]; frame[4] = (ulong)pc;
        // The callee's frame, found from the depth (r10 may have been overwritten), starts zeroed.
        new Span<byte>((void*)(run.StackStart + run.FrameBytes), StackSize).Clear();
        run.Depth++;
        run.Loops[run.Depth] = Op.MayGotoBudget;
        run.FrameBytes += StackSize;
        reg[10] += StackSize;
        return code + pc + ins->Imm;
    }

    /// <summary>Exit from a subprogram: restores r6-r9 and returns the caller's next slot.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    static Instruction* LeaveFrame(ref RunState run, ulong* reg, Instruction* code)
    {
        run.Depth--;
        ulong* frame = run.Saved + 5 * run.Depth;
        reg[6] = frame[0]; reg[7] = frame[1]; reg[8] = frame[2]; reg[9] = frame[3];
        run.FrameBytes -= StackSize;
        reg[10] -= StackSize;
        return code + (int)frame[4];
    }

    /// <summary>
    /// The helper call at <paramref name="site"/>: r0 set; true when the helper ended the program (bpf_tail_call,
    /// an exiting kfunc), r0 then being the program's result.
    /// </summary>
    // One test of the site's shape, fixed when the program was prepared, then that shape's checks inline and a direct
    // call of the helper's method: no loop over the prototype's arguments (an indirect jump per argument) and no
    // delegate (whose open static invocation goes through a shuffle thunk). Anything a shape's quick check does not
    // vouch for goes to CallHelper, the full check, which finds the region or raises the fault.
    [MethodImpl(MethodImplOptions.NoInlining)]
    bool CallAt(CallSite site, ulong* reg, ref RunState run)
    {
        int index = site.Slot;
        ulong r0;
        CallShape shape = site.Shape;
        if (shape == CallShape.Plain)
        {
            // A helper whose prototype says nothing may look for memory in the stack block itself: announced once per run.
            if (site.Announces && !run.Announced) Announce(ref run);
            r0 = site.Function(reg[1], reg[2], reg[3], reg[4], reg[5]);
        }
        else if (shape == CallShape.MapKey)
        {
            // bpf_map_lookup_elem, bpf_map_delete_elem: the site's last map, live, and a key the run may read.
            if (site.Hint is not { } hint || hint.Map.Handle != reg[1] || hint.Map.IsDisposed || !run.Holds(reg[2], hint.KeySize))
                return CallChecked(site, index, reg, ref run);
            r0 = site.Function(reg[1], reg[2], reg[3], reg[4], reg[5]);
            if (site.ReturnsPointer && r0 != 0) AddResult(ref run, hint, r0);
        }
        else if (shape == CallShape.CtxSocket)
        {
            // bpf_sk_assign: the run's own context, and no socket or the one a lookup returned to this run.
            ulong sk = reg[2];
            if (reg[1] != run.Context || reg[1] == 0 || (sk != 0 && sk != run.LastSocket)) return CallChecked(site, index, reg, ref run);
            r0 = site.Function(reg[1], sk, reg[3], reg[4], reg[5]);
        }
        else if (shape == CallShape.Socket)
        {
            // bpf_sk_release: the socket a lookup returned to this run.
            if (reg[1] != run.LastSocket || reg[1] == 0) return CallChecked(site, index, reg, ref run);
            r0 = site.Function(reg[1], reg[2], reg[3], reg[4], reg[5]);
        }
        else
        {
            return CallChecked(site, index, reg, ref run);
        }
        reg[0] = r0;
        return site.Exits && r0 == 0 && Ended(site.Helper, reg);
    }

    /// <summary>A helper's non-NULL pointer result becomes a region of the run (and the last one); a socket view is remembered as the run's socket.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AddResult(ref RunState run, MapHint hint, ulong r0)
    {
        run.Cache.Add(r0, hint.ResultBytes);
        run.SetLast(r0, hint.ResultBytes);
        // A socket a SOCKMAP/SOCKHASH lookup returned: the next bpf_sk_assign or bpf_sk_release of it needs no registry.
        if (hint.HoldsSockets) run.LastSocket = r0;
    }

    /// <summary>A call the site's shape does not cover, or whose arguments its quick check did not vouch for: the full path.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    bool CallChecked(CallSite site, int index, ulong* reg, ref RunState run)
    {
        if (site.Announces && !run.Announced) Announce(ref run);
        Helper h = site.Helper;
        reg[0] = site.Plain ? h.Invoke(reg[1], reg[2], reg[3], reg[4], reg[5]) : CallHelper(site, reg, index, ref run);
        return h.Exit != HelperExit.None && reg[0] == 0 && Ended(h, reg);
    }

    /// <summary>callx: the helper whose id is in r<paramref name="d"/>, chosen at run time, checked in full; as <see cref="CallAt"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    bool CallX(int index, ulong* reg, int d, ref RunState run)
    {
        if (!_table.TryGet((int)reg[d], out var h) || reg[d] > int.MaxValue)
            throw new BpfRuntimeException(index, $"callx to unknown helper {reg[d]}");
        if (!run.Announced) Announce(ref run);
        reg[0] = CallHelper(new CallSite(h, HelperPlan.Full, index), reg, index, ref run);
        return h.Exit != HelperExit.None && reg[0] == 0 && Ended(h, reg);
    }

    // A helper that ends the program returned 0: the program's result is the tail call's (or 0).
    static bool Ended(Helper h, ulong* reg)
    {
        reg[0] = h.Exit == HelperExit.TailCall ? TailCallState.TakeResult() : 0;
        return true;
    }

    /// <summary>A helper call: its pointer arguments checked first, its pointer result cached as a region.</summary>
    ulong CallHelper(CallSite site, ulong* reg, int index, ref RunState run)
    {
        Helper h = site.Helper;
        // A racy cache of a reference: any thread's last map is as good a hint. Written only on a change.
        var hint = site.Hint;
        var last = hint?.Map;
        if (site.Plan == HelperPlan.Full || !HelperPlan.Accepts(site.Plan, reg, run.Context, last, ref run, out var map))
        {
            // The full check also looks in the registry, whose list of this thread's stacks must be this run's.
            if (!run.Announced) Announce(ref run);
            map = HelperArguments.Check(ref run, h, reg[1], reg[2], reg[3], reg[4], reg[5], run.Context, _code, index, last, run.LastSocket);
            if (map != null && !ReferenceEquals(last, map)) site.Hint = hint = new MapHint(map);
        }
        ulong r0 = h.Invoke(reg[1], reg[2], reg[3], reg[4], reg[5]);
        // A record submitted or discarded is no longer the program's: forget what the cache knew.
        if (site.ReleasesMemory) { run.Cache = default; run.LastSocket = 0; run.SetLast(run.StackStart, StackSize); }
        // Only a helper whose result the verifier types as a pointer adds a region (no map, no region either).
        if (site.ReturnsPointer && map != null && HelperArguments.ResultBytes(h, map, r0, reg[2]) is int bytes and > 0)
        {
            run.Cache.Add(r0, bytes);
            run.SetLast(r0, bytes);
            // A socket a SOCKMAP/SOCKHASH lookup returned: the next bpf_sk_assign or bpf_sk_release of it needs no registry.
            if (map.Type is MapType.SockMap or MapType.SockHash) run.LastSocket = r0;
        }
        return r0;
    }

    /// <summary>Ends a run: a callback's stack stops being a region.</summary>
    static ulong Return(bool callback, ulong stackStart, ulong r0)
    {
        if (callback) MemoryRegions.ExitStack(stackStart);
        return r0;
    }
}
