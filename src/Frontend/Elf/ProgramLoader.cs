using BpfJit.Frontend.Btf;

namespace BpfJit.Frontend.Elf;

/// <summary>
/// Splits executable sections into functions, picks the programs, and links each program: appends
/// the subprograms it calls (recursively), fixes call offsets, and rewrites map and global-data
/// ld_imm64s to symbolic map indexes (src 5 and 6).
/// </summary>
sealed class ProgramLoader
{
    /// <summary>A function symbol's slot range inside its section.</summary>
    sealed record Function(string Name, CodeSection Section, int Start, int Length, bool IsGlobal)
    {
        public int End => Start + Length;
    }

    /// <summary>A decoded executable section, its functions and its relocations by byte offset.</summary>
    sealed class CodeSection(ElfSection section, Instruction[] slots)
    {
        public ElfSection Elf { get; } = section;
        public Instruction[] Slots { get; } = slots;
        public List<Function> Functions { get; } = [];
        public Dictionary<ulong, ElfRelocation> Relocations { get; } = [];

        public Function? FunctionAt(int slot) => Functions.Find(f => slot >= f.Start && slot < f.End);
    }

    readonly ElfFile _elf;
    readonly MapLoader _maps;
    readonly BtfSpec? _btf;
    readonly Dictionary<int, CodeSection> _code = [];

    ProgramLoader(ElfFile elf, MapLoader maps, BtfSpec? btf)
    {
        _elf = elf;
        _maps = maps;
        _btf = btf;
    }

    public static List<ProgramSpec> Load(ElfFile elf, MapLoader maps, BtfSpec? btf, string license, uint? version)
    {
        var loader = new ProgramLoader(elf, maps, btf);
        loader.ReadSections();
        return loader.LinkPrograms(license, version);
    }

    void ReadSections()
    {
        foreach (var s in _elf.Sections.Where(s => s.IsExecutable))
        {
            if (s.Size % Instruction.Size != 0)
                throw _elf.Error(s, (long)s.Size, $"size {s.Size} is not a multiple of the instruction size {Instruction.Size}");
            // Slots are read, not validated: an instruction BpfJit cannot run condemns only the programs
            // that contain it, which the verifier rejects naming the instruction (as Linux judges each program).
            var data = _elf.Data(s);
            var slots = new Instruction[data.Length / Instruction.Size];
            for (int i = 0; i < slots.Length; i++) slots[i] = Instruction.Read(data.Slice(i * Instruction.Size, Instruction.Size));
            var code = new CodeSection(s, slots);
            foreach (var r in _elf.RelocationsFor(s))
            {
                if (r.Offset % Instruction.Size != 0)
                    throw _elf.Error(s, (long)r.Offset, $"relocation ({r.Type}) is not at an instruction boundary");
                if (r.Type is not (ElfRelocationType.Bpf64_64 or ElfRelocationType.Bpf64_32))
                    throw _elf.Error(s, (long)r.Offset, $"unsupported relocation type {DescribeType(r.Type)} in code (symbol '{r.Symbol.Name}')");
                code.Relocations[r.Offset] = r;
            }
            SplitFunctions(code);
            _code[s.Index] = code;
        }
    }

    /// <summary>The LLVM name of a relocation type (R_BPF_64_64), or its number when unknown.</summary>
    internal static string DescribeType(ElfRelocationType t) => t switch
    {
        ElfRelocationType.None => "R_BPF_NONE",
        ElfRelocationType.Bpf64_64 => "R_BPF_64_64",
        ElfRelocationType.Bpf64Abs64 => "R_BPF_64_ABS64",
        ElfRelocationType.Bpf64Abs32 => "R_BPF_64_ABS32",
        ElfRelocationType.Bpf64NoDyld32 => "R_BPF_64_NODYLD32",
        ElfRelocationType.Bpf64_32 => "R_BPF_64_32",
        _ => ((uint)t).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    void SplitFunctions(CodeSection code)
    {
        var syms = _elf.SymbolsByAddress(code.Elf.Index, static s => s.Type == ElfSymbolType.Func);
        if (syms.Count == 0)
        {
            // Hand-written code without function symbols: the whole section is one program.
            if (code.Slots.Length > 0)
                code.Functions.Add(new Function(SanitizeName(code.Elf.Name), code, 0, code.Slots.Length, true));
            return;
        }
        for (int i = 0; i < syms.Count; i++)
        {
            var sym = syms[i];
            if (sym.Value % Instruction.Size != 0 || sym.Value >= (ulong)code.Slots.Length * Instruction.Size)
                throw _elf.Error(code.Elf, (long)sym.Value, $"function '{sym.Name}' does not start at an instruction inside the section");
            int start = (int)(sym.Value / Instruction.Size);
            ulong end = sym.Size != 0 ? sym.Value + sym.Size
                : i + 1 < syms.Count ? syms[i + 1].Value : (ulong)code.Slots.Length * Instruction.Size;
            if (sym.Size % Instruction.Size != 0 || end > (ulong)code.Slots.Length * Instruction.Size || end <= sym.Value)
                throw _elf.Error(code.Elf, (long)sym.Value, $"function '{sym.Name}' (size {sym.Size}) does not fit the section");
            if (code.Functions.Count > 0 && code.Functions[^1].End > start)
                throw _elf.Error(code.Elf, (long)sym.Value, $"function '{sym.Name}' overlaps '{code.Functions[^1].Name}'");
            code.Functions.Add(new Function(sym.Name, code, start, (int)((end - sym.Value) / Instruction.Size),
                sym.Binding is ElfSymbolBinding.Global or ElfSymbolBinding.Weak));
        }
    }

    static string SanitizeName(string section) => section.Replace('/', '_').Replace('.', '_');

    /// <summary>The (section, slot) a local call or a function-address ld_imm64 at <paramref name="slot"/> targets.</summary>
    (CodeSection Section, int Slot) Target(CodeSection code, int slot, Instruction ins, ElfRelocation? reloc, bool isCall)
    {
        long where = (long)slot * Instruction.Size;
        if (reloc == null)
        {
            if (!isCall) throw _elf.Error(code.Elf, where, "function address without a relocation");
            long t = slot + 1L + ins.Imm;
            if (t < 0 || t >= code.Slots.Length)
                throw _elf.Error(code.Elf, where, $"call target {t} is outside the section");
            return (code, (int)t);
        }
        var sym = reloc.Symbol;
        var target = _elf.SectionOf(sym);
        if (target == null || !_code.TryGetValue(target.Index, out var targetCode))
            throw _elf.Error(code.Elf, where, sym.SectionIndex == 0
                ? $"call to undefined function '{sym.Name}' (extern functions and kfuncs are not supported)"
                : $"call to '{sym.Name}', which is not in an executable section");
        // libbpf's rule: the target is st_value/8 + imm + 1 for calls and (st_value + imm)/8 for addresses.
        long targetSlot = isCall ? (long)(sym.Value / Instruction.Size) + ins.Imm + 1
            : ((long)sym.Value + ins.Imm) / Instruction.Size;
        if (targetSlot < 0 || targetSlot >= targetCode.Slots.Length)
            throw _elf.Error(code.Elf, where, $"call target '{sym.Name}'+{ins.Imm} is outside section {target.Name}");
        return (targetCode, (int)targetSlot);
    }

    HashSet<Function> CalledFunctions()
    {
        var called = new HashSet<Function>();
        foreach (var code in _code.Values)
        {
            for (int i = 0; i < code.Slots.Length; i++)
            {
                var ins = code.Slots[i];
                code.Relocations.TryGetValue((ulong)i * Instruction.Size, out var reloc);
                bool isCall = ins.IsCall && ins.Src == (byte)CallKind.Local && !IsExternCall(reloc);
                bool isFuncAddr = ins.IsLdImm64 && reloc != null && _elf.SectionOf(reloc.Symbol) is { } s && _code.ContainsKey(s.Index);
                if (isCall || isFuncAddr)
                {
                    var (tc, ts) = Target(code, i, ins, reloc, isCall);
                    if (tc.FunctionAt(ts) is { } f) called.Add(f);
                }
                if (ins.IsLdImm64) i++;
            }
        }
        return called;
    }

    /// <summary>A call relocated against an undefined symbol: a kernel function (an extern in <c>.ksyms</c>), a kfunc call.</summary>
    static bool IsExternCall(ElfRelocation? reloc) => reloc != null && reloc.Symbol.SectionIndex == 0;

    List<ProgramSpec> LinkPrograms(string license, uint? version)
    {
        var called = CalledFunctions();
        var programs = new List<ProgramSpec>();
        // In section order. Sorted keys, not OrderBy: LINQ's sorter fills its index map with a vectorised
        // Enumerable.FillIncrementing<int> that RyuJIT compiles at a process's first object (docs/perf.md, "Cold start").
        var sections = new int[_code.Count];
        _code.Keys.CopyTo(sections, 0);
        Array.Sort(sections);
        foreach (int index in sections)
        {
            var code = _code[index];
            bool isText = code.Elf.Name == ".text";
            foreach (var f in code.Functions)
            {
                // .text holds subprograms; a global .text function nobody calls is a program of unknown type.
                bool isProgram = isText ? f.IsGlobal && !called.Contains(f) : f.IsGlobal;
                if (isProgram) programs.Add(Link(f, license, version));
            }
        }
        return programs;
    }

    ProgramSpec Link(Function entry, string license, uint? version)
    {
        string section = entry.Section.Elf.Name;
        BpfObjectException Fail(CodeSection at, int slot, string reason) =>
            _elf.Error(at.Elf, (long)slot * Instruction.Size, $"program {entry.Name}: {reason}");

        // A capacity: List's parameterless constructor reads its static empty array, whose static constructor over
        // Instruction is framework code RyuJIT compiles at a process's first object (docs/perf.md, "Cold start").
        var output = new List<Instruction>(entry.Length);
        var placed = new Dictionary<Function, int>();
        var order = new List<Function>();
        var refs = new List<MapReference>();
        var kfuncs = new List<string>();

        int Place(Function f)
        {
            if (placed.TryGetValue(f, out int at)) return at;
            at = output.Count;
            placed[f] = at;
            order.Add(f);
            for (int i = f.Start; i < f.End; i++) output.Add(f.Section.Slots[i]);
            return at;
        }

        Place(entry);
        for (int n = 0; n < order.Count; n++)
        {
            var f = order[n];
            var code = f.Section;
            int fBase = placed[f];
            for (int i = f.Start; i < f.End; i++)
            {
                int outIdx = fBase + (i - f.Start);
                var ins = code.Slots[i];
                code.Relocations.TryGetValue((ulong)i * Instruction.Size, out var reloc);
                if (ins.IsLdImm64)
                {
                    if (i + 1 >= f.End) throw Fail(code, i, "ld_imm64 is cut off by the end of the function");
                    if (code.Relocations.ContainsKey((ulong)(i + 1) * Instruction.Size))
                        throw Fail(code, i + 1, "relocation on the second slot of an ld_imm64");
                    if (reloc != null) LinkLdImm64(code, i, outIdx, reloc, output, refs, Place, Fail);
                    // A raw map fd (src 1 or 2) without a relocation, as hand-written selftests have, goes on as libbpf passes
                    // it to the kernel: no map has that fd, so the verifier rejects this program alone. Map indexes (5, 6)
                    // must come from relocations: one left in the code would silently name one of the object's maps.
                    else if (ins.Src is not ((byte)Ld64Source.Imm or (byte)Ld64Source.MapFd or (byte)Ld64Source.MapValue))
                        throw Fail(code, i, $"ld_imm64 with src {ins.Src} ({(Ld64Source)ins.Src}) has no relocation; an object may only hold plain constants and map fds");
                    i++;
                    continue;
                }
                if (ins.IsCall && IsExternCall(reloc))
                {
                    // libbpf's BPF_PSEUDO_KFUNC_CALL; imm names the function by its index in ProgramSpec.KernelFunctions.
                    if (reloc!.Type != ElfRelocationType.Bpf64_32)
                        throw Fail(code, i, $"call has a {DescribeType(reloc.Type)} relocation, expected R_BPF_64_32");
                    int k = kfuncs.IndexOf(reloc.Symbol.Name);
                    if (k < 0) { k = kfuncs.Count; kfuncs.Add(reloc.Symbol.Name); }
                    output[outIdx] = ins with { Src = (byte)CallKind.Kfunc, Imm = k };
                    continue;
                }
                if (ins.IsCall && ins.Src == (byte)CallKind.Local)
                {
                    if (reloc != null && reloc.Type != ElfRelocationType.Bpf64_32)
                        throw Fail(code, i, $"call has a {DescribeType(reloc.Type)} relocation, expected R_BPF_64_32");
                    var (tc, ts) = Target(code, i, ins, reloc, isCall: true);
                    var tf = tc.FunctionAt(ts) ?? throw Fail(code, i, $"call target {ts} in {tc.Elf.Name} is not inside a function");
                    int tBase = Place(tf);
                    output[outIdx] = ins with { Imm = tBase + (ts - tf.Start) - (outIdx + 1) };
                    continue;
                }
                if (reloc != null)
                    throw Fail(code, i, $"relocation {DescribeType(reloc.Type)} against '{reloc.Symbol.Name}' is on an instruction that is neither ld_imm64 nor a call");
            }
        }

        var slots = output.ToArray();

        var (type, attach) = IsText(entry) ? (ProgramType.Unspec, null) : SectionNames.Classify(section);
        var notes = new List<string>();
        if (type == ProgramType.Unspec)
            notes.Add($"section '{section}' is not a known program type; set the type by hand (ProgramSpec.SetType)");
        else if (type is not (ProgramType.SkLookup or ProgramType.SkReuseport))
            notes.Add($"program type {type} is recognised but not supported by BpfJit (only SkLookup and SkReuseport)");

        var functions = order.Select(f => new FunctionRange(f.Name, f.Section.Elf.Name, placed[f], f.Length, f.Start)).ToList();
        var ext = _btf?.Ext;
        var funcInfos = Remap(ext?.FuncInfos, order, placed, r => r.InstructionOffset, (r, o) => r with { InstructionOffset = o });
        var lineInfos = Remap(ext?.LineInfos, order, placed, r => r.InstructionOffset, (r, o) => r with { InstructionOffset = o });
        var cores = Remap(ext?.CoreRelocations, order, placed, r => r.InstructionOffset, (r, o) => r with { InstructionOffset = o });
        var unresolved = new Dictionary<int, string>();
        if (cores.Count > 0)
        {
            // Named where each instruction came from: its own section and offset, as the loader's errors are.
            (CodeSection Section, int Slot) Origin(int at)
            {
                var f = order.Last(o => placed[o] <= at);
                return (f.Section, f.Start + at - placed[f]);
            }
            try
            {
                foreach (var (at, reason) in CoreRelocator.Apply(slots, cores, _btf!))
                {
                    var (sec, slot) = Origin(at);
                    unresolved[at] = $"{_elf.Name}: section {sec.Elf.Name}: offset 0x{slot * Instruction.Size:x}: program {entry.Name}: {reason}";
                    notes.Add($"instruction {at} is poisoned: {reason}");
                }
            }
            catch (CoreRelocationException e)
            {
                var (sec, slot) = Origin(e.Instruction);
                throw Fail(sec, slot, e.Message);
            }
        }

        return new ProgramSpec(entry.Name, section, type, attach, slots)
        {
            License = license,
            KernelVersion = version,
            MapReferences = refs,
            KernelFunctions = kfuncs,
            Functions = functions,
            FuncInfos = funcInfos,
            Btf = funcInfos.Count > 0 ? _btf : null,
            LineInfos = lineInfos,
            CoreRelocations = cores,
            UnresolvedCoreRelocations = unresolved,
            Notes = notes,
        };

        static bool IsText(Function f) => f.Section.Elf.Name == ".text";
    }

    void LinkLdImm64(CodeSection code, int slot, int outIdx, ElfRelocation reloc, List<Instruction> output,
        List<MapReference> refs, Func<Function, int> place, Func<CodeSection, int, string, BpfObjectException> fail)
    {
        var ins = code.Slots[slot];
        var next = code.Slots[slot + 1];
        var sym = reloc.Symbol;
        if (reloc.Type != ElfRelocationType.Bpf64_64)
            throw fail(code, slot, $"ld_imm64 has a {DescribeType(reloc.Type)} relocation, expected R_BPF_64_64");
        if (sym.SectionIndex == 0)
            throw fail(code, slot, $"reference to undefined symbol '{sym.Name}' (extern variables, .kconfig and .ksyms variables are not supported)");
        var target = _elf.SectionOf(sym)
            ?? throw fail(code, slot, $"symbol '{sym.Name}' is in special section 0x{sym.SectionIndex:x}, which cannot be referenced");
        long addend = reloc.Addend ?? ins.Imm;

        if (_code.TryGetValue(target.Index, out var targetCode))
        {
            // The address of a function (a callback for bpf_loop and friends): BPF_PSEUDO_FUNC.
            var (tc, ts) = Target(code, slot, ins, reloc, isCall: false);
            var tf = tc.FunctionAt(ts) ?? throw fail(code, slot, $"function address {ts} in {targetCode.Elf.Name} is not inside a function");
            int tBase = place(tf);
            output[outIdx] = ins with { Src = (byte)Ld64Source.Func, Imm = tBase + (ts - tf.Start) - (outIdx + 1) };
            output[outIdx + 1] = next with { Imm = 0 };
            return;
        }

        if (addend < 0 || addend > int.MaxValue)
            throw fail(code, slot, $"reference to '{sym.Name}' has an invalid addend {addend}");
        ulong offset = sym.Value + (ulong)addend;
        var found = _maps.Find(target, sym.Type == ElfSymbolType.Section ? sym.Value + (ulong)addend : sym.Value);
        if (found == null)
        {
            throw fail(code, slot, MapLoader.IsMapSection(target)
                ? $"no map is defined at offset 0x{sym.Value:x} of {target.Name} (symbol '{sym.Name}')"
                : $"symbol '{sym.Name}' is in section {target.Name}, which holds neither maps nor global data");
        }
        var (index, isData) = found.Value;
        var map = _maps.Maps[index];
        if (isData)
        {
            if (offset > map.ValueSize || (long)offset < 0)
                throw fail(code, slot, $"reference to '{sym.Name}'+{addend} is outside {map.Name} (size {map.ValueSize})");
            output[outIdx] = ins with { Src = (byte)Ld64Source.MapIdxValue, Imm = index };
            output[outIdx + 1] = next with { Imm = (int)offset };
            refs.Add(new MapReference(outIdx, index, map.Name, MapReferenceKind.Value, (uint)offset, sym.Name));
        }
        else
        {
            output[outIdx] = ins with { Src = (byte)Ld64Source.MapIdx, Imm = index };
            output[outIdx + 1] = next with { Imm = 0 };
            refs.Add(new MapReference(outIdx, index, map.Name, MapReferenceKind.Map, 0, sym.Name));
        }
    }

    /// <summary>Moves section-relative BTF.ext records of every placed function to program-relative offsets.</summary>
    static List<T> Remap<T>(IReadOnlyDictionary<string, IReadOnlyList<T>>? bySection, List<Function> order,
        Dictionary<Function, int> placed, Func<T, int> offsetOf, Func<T, int, T> withOffset)
    {
        var result = new List<T>();
        if (bySection == null) return result;
        foreach (var f in order)
        {
            if (!bySection.TryGetValue(f.Section.Elf.Name, out var records)) continue;
            foreach (var r in records)
            {
                int off = offsetOf(r);
                if (off >= f.Start && off < f.End) result.Add(withOffset(r, placed[f] + off - f.Start));
            }
        }
        // Stable by offset (records sharing a slot keep their order): a counting sort over the offsets, which lie in
        // the linked program. Not OrderBy, nor Array.Sort over longs: both are framework generic code that RyuJIT
        // compiles at a process's first object (docs/perf.md, "Cold start").
        int last = -1;
        foreach (var r in result) last = Math.Max(last, offsetOf(r));
        var next = new int[last + 2];
        foreach (var r in result) next[offsetOf(r) + 1]++;
        for (int i = 1; i < next.Length; i++) next[i] += next[i - 1];
        var sorted = new T[result.Count];
        foreach (var r in result) sorted[next[offsetOf(r)]++] = r;
        return new List<T>(sorted);
    }
}
