using BpfJit.Frontend;

namespace BpfJit.Runtime.Maps;

/// <summary>One ld_imm64 the binder resolved: its slot, the map, and whether it loads a value address.</summary>
/// <param name="Slot">The first slot of the ld_imm64.</param>
/// <param name="Map">The map it refers to.</param>
/// <param name="IsValue">True for BPF_PSEUDO_MAP_VALUE / MAP_IDX_VALUE: the constant is a value address.</param>
/// <param name="Offset">The offset into the value (value references only).</param>
public sealed record BoundMapReference(int Slot, BpfMap Map, bool IsValue, uint Offset);

/// <summary>
/// A program whose map references are plain ld_imm64 constants, with the side table a JIT uses to
/// specialise each map access (slot → map). BPF_PSEUDO_FUNC references are left for the engine.
/// </summary>
public sealed class BoundProgram
{
    readonly Dictionary<int, BoundMapReference> _bySlot;

    internal BoundProgram(Instruction[] code, IReadOnlyList<BoundMapReference> references, string tag, string? btfName)
    {
        Code = code;
        Tag = tag;
        BtfName = btfName;
        References = references;
        _bySlot = references.ToDictionary(r => r.Slot);
        Maps = references.Select(r => r.Map).Distinct().ToArray();
    }

    /// <summary>The bound instructions.</summary>
    public Instruction[] Code { get; }

    /// <summary>
    /// The program's tag (<see cref="ProgramTag"/>), of the instructions as loaded: binding puts live handles in
    /// the map references, which would change it from run to run.
    /// </summary>
    public string Tag { get; }

    /// <summary>
    /// The BTF name of the program's main function when it was loaded with BTF func info (the kernel then names
    /// its JIT image after it, <see cref="ProgramSymbol.OfBtf"/>); null without.
    /// </summary>
    public string? BtfName { get; }

    /// <summary>Every resolved reference, in slot order.</summary>
    public IReadOnlyList<BoundMapReference> References { get; }

    /// <summary>The distinct maps the program uses.</summary>
    public IReadOnlyList<BpfMap> Maps { get; }

    /// <summary>The reference the ld_imm64 at <paramref name="slot"/> was bound from, or null.</summary>
    public BoundMapReference? At(int slot) => _bySlot.GetValueOrDefault(slot);
}

/// <summary>A map reference in a program cannot be bound.</summary>
public sealed class ProgramBindException : BpfException
{
    /// <summary>Creates the error for the ld_imm64 at <paramref name="slot"/>.</summary>
    public ProgramBindException(int slot, string reason) : base($"instruction {slot}: {reason}")
    {
        Slot = slot;
        Reason = reason;
    }

    /// <summary>The slot of the ld_imm64.</summary>
    public int Slot { get; }

    /// <summary>What is wrong.</summary>
    public string Reason { get; }
}

/// <summary>
/// Resolves the symbolic map references of a loaded program (the kernel does this in
/// resolve_pseudo_ldimm64): BPF_PSEUDO_MAP_IDX (src 5, imm = index into the program's map list) and
/// BPF_PSEUDO_MAP_FD (src 1, imm = fd) become the map's <see cref="BpfMap.Handle"/>;
/// BPF_PSEUDO_MAP_IDX_VALUE (src 6) and BPF_PSEUDO_MAP_VALUE (src 2), with the value offset in the
/// second slot's imm, become the address of that byte of a single-entry ARRAY's value (global data).
/// </summary>
public static class ProgramBinder
{
    /// <summary>
    /// Binds a loaded program: its kfunc calls to the functions BpfJit runs (<see cref="KfuncTable.Bind"/>),
    /// then its map references by index into <paramref name="maps"/>.
    /// </summary>
    public static BoundProgram Bind(Frontend.Elf.ProgramSpec program, IReadOnlyList<BpfMap> maps)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(maps);
        var code = program.KernelFunctions.Count == 0 ? program.Instructions : KfuncTable.Bind(program.Instructions, program.KernelFunctions);
        // The tag is of the program as loaded (what inspect shows), before kfunc calls are bound too.
        string? btfName = program.FuncInfos.FirstOrDefault(f => f.InstructionOffset == 0)?.Name;
        return Bind(code, maps, fd => fd >= 0 && fd < maps.Count ? maps[fd] : null, ProgramTag.Compute(program.Instructions), btfName);
    }

    /// <summary>Binds with fds equal to indexes into <paramref name="maps"/>.</summary>
    public static BoundProgram Bind(Instruction[] program, IReadOnlyList<BpfMap> maps)
    {
        ArgumentNullException.ThrowIfNull(maps);
        return Bind(program, maps, fd => fd >= 0 && fd < maps.Count ? maps[fd] : null);
    }

    /// <summary>Binds; <paramref name="byFd"/> resolves the fds of MAP_FD / MAP_VALUE references.</summary>
    public static BoundProgram Bind(Instruction[] program, IReadOnlyList<BpfMap> maps, Func<int, BpfMap?> byFd)
    {
        ArgumentNullException.ThrowIfNull(program);
        return Bind(program, maps, byFd, ProgramTag.Compute(program), null);
    }

    static BoundProgram Bind(Instruction[] program, IReadOnlyList<BpfMap> maps, Func<int, BpfMap?> byFd, string tag, string? btfName)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(maps);
        ArgumentNullException.ThrowIfNull(byFd);
        var code = (Instruction[])program.Clone();
        var references = new List<BoundMapReference>();
        for (int i = 0; i < code.Length; i++)
        {
            var ins = code[i];
            if (!ins.IsLdImm64) continue;
            if (i + 1 >= code.Length) throw new ProgramBindException(i, "invalid bpf_ld_imm64 insn");
            var source = (Ld64Source)ins.Src;
            switch (source)
            {
                case Ld64Source.Imm:
                case Ld64Source.Func:
                    break;
                case Ld64Source.MapIdx:
                case Ld64Source.MapIdxValue:
                case Ld64Source.MapFd:
                case Ld64Source.MapValue:
                    {
                        bool byIndex = source is Ld64Source.MapIdx or Ld64Source.MapIdxValue;
                        bool isValue = source is Ld64Source.MapIdxValue or Ld64Source.MapValue;
                        BpfMap? map = byIndex
                            ? (ins.Imm >= 0 && ins.Imm < maps.Count ? maps[ins.Imm] : null)
                            : byFd(ins.Imm);
                        if (map == null)
                            throw new ProgramBindException(i, byIndex ? $"map index {ins.Imm} is out of range ({maps.Count} maps)" : $"fd {ins.Imm} is not pointing to valid bpf_map");
                        if (map.IsDisposed) throw new ProgramBindException(i, $"map {map.Name} is disposed");
                        uint offset = (uint)code[i + 1].Imm;
                        if (!isValue && offset != 0) throw new ProgramBindException(i, "invalid bpf_ld_imm64 insn: second imm must be 0 for a map pointer");
                        ulong constant = isValue ? ValueAddress(i, map, offset) : map.Handle;
                        code[i] = ins with { Src = (byte)Ld64Source.Imm, Imm = (int)(uint)constant };
                        code[i + 1] = code[i + 1] with { Imm = (int)(uint)(constant >> 32) };
                        references.Add(new BoundMapReference(i, map, isValue, isValue ? offset : 0));
                        break;
                    }
                default:
                    throw new ProgramBindException(i, $"ld_imm64 with {source} is not supported");
            }
            i++;
        }
        return new BoundProgram(code, references, tag, btfName);
    }

    static ulong ValueAddress(int slot, BpfMap map, uint offset)
    {
        if (map is not ArrayMap array || array.MaxEntries != 1)
            throw new ProgramBindException(slot, $"map {map.Name} ({map.Type}, {map.MaxEntries} entries) has no direct value access: only a single-entry ARRAY has");
        if (offset >= (uint)array.ValueSize)
            throw new ProgramBindException(slot, $"direct value offset of {offset} is not allowed (map {map.Name} value_size {array.ValueSize})");
        return array.Data + offset;
    }
}
