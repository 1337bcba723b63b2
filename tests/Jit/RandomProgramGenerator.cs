using BpfJit.Frontend;

namespace BpfJit.Tests.Jit;

/// <summary>
/// Generates random valid eBPF programs for the differential test: ALU chains in 32 and 64 bits
/// (every operation, division edge cases included), every jump kind (forward only) and bounded
/// loops, stack spills and fills at r10-relative offsets, loads and stores on the input memory,
/// atomics, byte swaps, ld_imm64, helper calls (plain, unwinding, callx) and bpf-to-bpf calls
/// (an acyclic set of functions, sometimes a recursive one that may overflow the frame limit).
/// <para>
/// Register discipline keeps results comparable between engines whose stack and memory live at
/// different addresses: data flows only through r0-r7; r8 is the loop counter; r9 holds the input
/// memory's address and r10 the frame pointer, and neither is ever copied into a data register.
/// At the end the main program dumps r0-r8 and its stack (and the first callee frame's) into the
/// input memory, so comparing the memory after the run compares registers and stacks too.
/// </para>
/// </summary>
public sealed class RandomProgramGenerator
{
    /// <summary>Bytes of input memory the program reads and writes freely.</summary>
    public const int DataBytes = 64;
    /// <summary>Offset of the register dump (r0-r8) in the memory.</summary>
    public const int RegisterDump = DataBytes;
    /// <summary>Offset of the stack dump (main frame, then the first callee frame).</summary>
    public const int StackDump = RegisterDump + 9 * 8;
    /// <summary>Total input memory.</summary>
    public const int MemoryBytes = StackDump + 1024;

    const byte Alu = 0x04, Alu64 = 0x07, Jmp = 0x05, Jmp32 = 0x06;
    static readonly byte[] s_aluOps = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0];
    static readonly byte[] s_jmpOps = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0];
    static readonly int[] s_atomicOps = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];
    static readonly ulong[] s_special = [0, 1, 2, 3, 0xffffffffffffffff, 0xfffffffffffffffe, 0x80000000, 0x7fffffff, 0xffffffff,
        0x8000000000000000, 0x7fffffffffffffff, 0x100000000, 0xffffffff80000000, 63, 64, 31, 32];

    readonly Random _rng;
    readonly List<Instruction> _code = [];
    readonly List<(int Slot, int Label, bool Call)> _fixups = [];
    readonly List<int> _labelSlots = [];
    readonly List<(int Label, int ItemsLeft)> _pending = [];
    int[] _functionLabels = [];
    int _function;      // index of the function being generated (0 = main)
    int _recursive = -1; // label of the recursive function, or -1

    RandomProgramGenerator(int seed) => _rng = new Random(seed);

    /// <summary>Generates the program for <paramref name="seed"/> and its initial memory.</summary>
    public static (Instruction[] Program, byte[] Memory) Generate(int seed)
    {
        var g = new RandomProgramGenerator(seed);
        var program = g.Build();
        var memory = new byte[MemoryBytes];
        g._rng.NextBytes(memory.AsSpan(0, DataBytes));
        return (program, memory);
    }

    Instruction[] Build()
    {
        int functions = _rng.Next(4) == 0 ? 0 : _rng.Next(1, 4);
        _functionLabels = Enumerable.Range(0, functions).Select(_ => NewLabel()).ToArray();
        if (functions > 0 && _rng.Next(3) == 0) _recursive = NewLabel();

        // main: r9 = memory; random data registers; a call that always runs; the body; the dumps.
        Emit(Mov64Reg(9, 1));
        for (int r = 0; r <= 7; r++) LoadImm64(r, Value());
        if (functions > 0) CallLocal(_functionLabels[0]);
        Body(_rng.Next(10, 40), allowLoop: true);
        for (int r = 0; r <= 8; r++) Emit(new Instruction(0x7b, 9, (byte)r, (short)(RegisterDump + 8 * r), 0));
        // Only the main frame: the callees' frames lie above r10, which the interpreter (memory-safe since
        // issue 16) refuses to read once they have returned, as the kernel's verifier refuses any access there.
        for (int q = 0; q < 64; q++)
        {
            Emit(new Instruction(0x79, 2, 10, (short)(-512 + 8 * q), 0));
            Emit(new Instruction(0x7b, 9, 2, (short)(StackDump + 8 * q), 0));
        }
        Emit(new Instruction(0x95, 0, 0, 0, 0));

        for (_function = 1; _function <= functions; _function++)
        {
            Mark(_functionLabels[_function - 1]);
            Body(_rng.Next(3, 15), allowLoop: _rng.Next(2) == 0);
            if (_recursive >= 0 && _function == functions && _rng.Next(2) == 0)
            {
                // r7 = small count; the recursive function nests r7 + 1 more frames (r7 >= 7 overflows)
                LoadImm64(7, (ulong)_rng.Next(0, 9));
                CallLocal(_recursive);
            }
            FlushPending();
            Emit(new Instruction(0x95, 0, 0, 0, 0));
        }
        if (_recursive >= 0)
        {
            // rec: if (r7 == 0) goto out; r7 -= 1; call rec; r0 += 1; out: exit
            Mark(_recursive);
            int outLabel = NewLabel();
            JumpTo(new Instruction(Jmp | 0x10, 7, 0, 0, 0), outLabel);
            Emit(new Instruction(Alu64 | 0x10, 7, 0, 0, 1));
            CallLocal(_recursive);
            Emit(new Instruction(Alu64 | 0x00, 0, 0, 0, 1));
            Mark(outLabel);
            Emit(new Instruction(0x95, 0, 0, 0, 0));
        }

        var code = _code.ToArray();
        foreach (var (slot, label, call) in _fixups)
        {
            int rel = _labelSlots[label] - (slot + 1);
            var ins = code[slot];
            code[slot] = call || ins.Opcode == 0x06 ? ins with { Imm = rel } : ins with { Offset = checked((short)rel) };
        }
        return code;
    }

    void Body(int items, bool allowLoop)
    {
        for (int i = 0; i < items; i++)
        {
            Item(allowLoop);
            Tick();
        }
        FlushPending();
    }

    /// <summary>One random item: a few instructions forming one operation.</summary>
    void Item(bool allowLoop)
    {
        int roll = _rng.Next(100);
        if (roll < 30) AluOp();
        else if (roll < 40) StackSpill();
        else if (roll < 48) StackFill();
        else if (roll < 54) MemoryAccess();
        else if (roll < 60) Atomic();
        else if (roll < 64) ByteSwap();
        else if (roll < 67) LoadImm64(DataReg(), Value());
        else if (roll < 80) ForwardJump();
        else if (roll < 85 && allowLoop) Loop();
        else if (roll < 91) HelperCall();
        else if (roll < 95 && _function < _functionLabels.Length) CallLocal(_functionLabels[_rng.Next(_function, _functionLabels.Length)]);
        else AluOp();
    }

    void AluOp()
    {
        bool is64 = _rng.Next(2) == 0;
        byte cls = is64 ? Alu64 : Alu;
        byte op = s_aluOps[_rng.Next(s_aluOps.Length)];
        byte d = DataReg();
        if (op == 0x80) { Emit(new Instruction((byte)(cls | op), d, 0, 0, 0)); return; }
        short offset = 0;
        if (op is 0x30 or 0x90) offset = (short)_rng.Next(2);
        bool reg = _rng.Next(2) == 0;
        if (op == 0xb0 && reg && _rng.Next(2) == 0)
        {
            short[] widths = is64 ? [8, 16, 32] : [8, 16];
            offset = widths[_rng.Next(widths.Length)];
        }
        if (reg) Emit(new Instruction((byte)(cls | op | 0x08), d, DataReg(), offset, 0));
        else
        {
            int imm = op is 0x60 or 0x70 or 0xc0 ? _rng.Next(0, 70) : (int)Value();
            Emit(new Instruction((byte)(cls | op), d, 0, offset, imm));
        }
    }

    void ByteSwap()
    {
        int width = s_swapWidths[_rng.Next(s_swapWidths.Length)];
        byte opcode = s_swapOpcodes[_rng.Next(s_swapOpcodes.Length)];   // le, be, bswap
        Emit(new Instruction(opcode, DataReg(), 0, 0, width));
    }

    static readonly int[] s_swapWidths = [16, 32, 64];
    static readonly byte[] s_swapOpcodes = [0xd4, 0xdc, 0xd7];
    static readonly byte[] s_storeReg = [0x73, 0x6b, 0x63, 0x7b];   // b h w dw
    static readonly byte[] s_storeImm = [0x72, 0x6a, 0x62, 0x7a];
    static readonly byte[] s_load = [0x71, 0x69, 0x61, 0x79];
    static readonly byte[] s_loadSx = [0x91, 0x89, 0x81];

    void StackSpill()
    {
        int size = _rng.Next(4);
        short off = (short)-_rng.Next(1 << size, 513);
        if (_rng.Next(3) == 0) Emit(new Instruction(s_storeImm[size], 10, 0, off, (int)Value()));
        else Emit(new Instruction(s_storeReg[size], 10, DataReg(), off, 0));
    }

    void StackFill()
    {
        int size = _rng.Next(4);
        short off = (short)-_rng.Next(1 << size, 513);
        bool sx = size < 3 && _rng.Next(3) == 0;
        Emit(new Instruction(sx ? s_loadSx[size] : s_load[size], DataReg(), 10, off, 0));
    }

    void MemoryAccess()
    {
        int size = _rng.Next(4);
        short off = (short)_rng.Next(0, DataBytes - (1 << size) + 1);
        switch (_rng.Next(3))
        {
            case 0: Emit(new Instruction(s_storeReg[size], 9, DataReg(), off, 0)); break;
            case 1: Emit(new Instruction(s_storeImm[size], 9, 0, off, (int)Value())); break;
            default:
                bool sx = size < 3 && _rng.Next(3) == 0;
                Emit(new Instruction(sx ? s_loadSx[size] : s_load[size], DataReg(), 9, off, 0));
                break;
        }
    }

    void Atomic()
    {
        bool is64 = _rng.Next(2) == 0;
        int size = is64 ? 8 : 4;
        int op = s_atomicOps[_rng.Next(s_atomicOps.Length)];
        bool onStack = _rng.Next(3) != 0;
        short off = onStack ? (short)(-size * _rng.Next(1, 512 / size + 1)) : (short)(size * _rng.Next(0, DataBytes / size));
        Emit(new Instruction(is64 ? (byte)0xdb : (byte)0xc3, onStack ? (byte)10 : (byte)9, DataReg(), off, op));
    }

    void ForwardJump()
    {
        int label = NewLabel();
        _pending.Add((label, _rng.Next(0, 6)));
        int kind = _rng.Next(12);
        if (kind == 0) { JumpTo(new Instruction(Jmp, 0, 0, 0, 0), label); return; }          // ja
        if (kind == 1) { JumpTo(new Instruction(Jmp32, 0, 0, 0, 0), label); return; }        // ja32 (gotol)
        byte cls = _rng.Next(2) == 0 ? Jmp : Jmp32;
        byte op = s_jmpOps[_rng.Next(s_jmpOps.Length)];
        if (_rng.Next(2) == 0) JumpTo(new Instruction((byte)(cls | op | 0x08), DataReg(), DataReg(), 0, 0), label);
        else JumpTo(new Instruction((byte)(cls | op), DataReg(), 0, 0, (int)Value()), label);
    }

    void Loop()
    {
        // r8 = n; loop: body; r8 -= 1; if r8 != 0 goto loop   (the body never writes r8)
        var outer = _pending.ToList();
        _pending.Clear();
        LoadImm64(8, (ulong)_rng.Next(1, 6));
        int top = NewLabel();
        Mark(top);
        int n = _rng.Next(1, 8);
        for (int i = 0; i < n; i++)
        {
            Item(allowLoop: false);
            Tick();
        }
        FlushPending();
        Emit(new Instruction(Alu64 | 0x10, 8, 0, 0, 1));
        JumpTo(new Instruction(Jmp | 0x50, 8, 0, 0, 0), top);
        _pending.AddRange(outer);
    }

    void HelperCall()
    {
        switch (_rng.Next(5))
        {
            case 0: Emit(new Instruction(0x85, 0, 0, 0, 2)); break;                    // r0 = r1 & 1
            case 1: Emit(new Instruction(0x85, 0, 0, 0, 5)); break;                    // unwind when r1 == 0
            case 2:
                // sometimes end the program from wherever it is
                LoadImm64(1, _rng.Next(4) == 0 ? 0UL : 1UL);
                Emit(new Instruction(0x85, 0, 0, 0, 5));
                break;
            default:
                // callx: the helper id in a register
                byte r = DataReg();
                LoadImm64(r, _rng.Next(2) == 0 ? 2UL : 5UL);
                Emit(new Instruction(0x8d, r, 0, 0, 0));
                break;
        }
    }

    void CallLocal(int label)
    {
        _fixups.Add((_code.Count, label, true));
        Emit(new Instruction(0x85, 0, 1, 0, 0));
    }

    void LoadImm64(int r, ulong value)
    {
        if (_rng.Next(2) == 0 && (long)value == (int)value)
        {
            Emit(new Instruction(Alu64 | 0xb0, (byte)r, 0, 0, (int)value));
            return;
        }
        Emit(new Instruction(0x18, (byte)r, 0, 0, (int)(uint)value));
        Emit(new Instruction(0, 0, 0, 0, (int)(uint)(value >> 32)));
    }

    static Instruction Mov64Reg(int d, int s) => new(Alu64 | 0xb0 | 0x08, (byte)d, (byte)s, 0, 0);

    ulong Value() => _rng.Next(3) switch
    {
        0 => s_special[_rng.Next(s_special.Length)],
        1 => (ulong)_rng.Next(-100, 100),
        _ => (ulong)_rng.NextInt64() ^ ((ulong)_rng.Next(2) << 63),
    };

    byte DataReg() => (byte)_rng.Next(0, 8);

    int NewLabel()
    {
        _labelSlots.Add(-1);
        return _labelSlots.Count - 1;
    }

    void Mark(int label) => _labelSlots[label] = _code.Count;

    void JumpTo(Instruction ins, int label)
    {
        _fixups.Add((_code.Count, label, false));
        Emit(ins);
    }

    void Emit(Instruction ins) => _code.Add(ins);

    /// <summary>Counts down pending forward-jump labels; marks those that are due here.</summary>
    void Tick()
    {
        for (int i = _pending.Count - 1; i >= 0; i--)
        {
            var (label, left) = _pending[i];
            if (left == 0) { Mark(label); _pending.RemoveAt(i); }
            else _pending[i] = (label, left - 1);
        }
    }

    void FlushPending()
    {
        foreach (var (label, _) in _pending) Mark(label);
        _pending.Clear();
    }
}
