using System.Buffers.Binary;

namespace BpfJit.Frontend.Elf;

/// <summary>
/// A minimal, span-based reader for relocatable ELF64 little-endian eBPF objects (<c>ET_REL</c>,
/// <c>EM_BPF</c>). It reads the section headers, the symbol table and relocations and checks every
/// offset against the file, so a truncated or corrupted object produces a <see cref="BpfObjectException"/>
/// naming the file, section and offset rather than an index error.
/// </summary>
public sealed class ElfFile
{
    /// <summary>e_machine value of eBPF.</summary>
    public const ushort MachineBpf = 247;

    const int HeaderSize = 64;
    const int SectionHeaderSize = 64;
    const int SymbolSize = 24;

    readonly byte[] _data;

    ElfFile(string name, byte[] data)
    {
        Name = name;
        _data = data;
    }

    /// <summary>The file name used in error messages.</summary>
    public string Name { get; }

    /// <summary>All section headers, indexed by section number (index 0 is the null section).</summary>
    public IReadOnlyList<ElfSection> Sections { get; private set; } = [];

    /// <summary>The symbol table (index 0 is the null symbol); empty when the object has none.</summary>
    public IReadOnlyList<ElfSymbol> Symbols { get; private set; } = [];

    /// <summary>
    /// The symbols of section <paramref name="sectionIndex"/> that <paramref name="keep"/> accepts, by address, symbols
    /// at one address in symbol-table order. A plain loop and List.Sort rather than Where/OrderBy: LINQ's sorter over a
    /// ulong key is framework generic code no ReadyToRun image holds, compiled by the JIT on every process's first load
    /// (docs/perf.md, "Cold start").
    /// </summary>
    public List<ElfSymbol> SymbolsByAddress(int sectionIndex, Func<ElfSymbol, bool> keep)
    {
        var result = new List<ElfSymbol>();
        foreach (var s in Symbols)
            if (s.SectionIndex == sectionIndex && keep(s)) result.Add(s);
        result.Sort(static (a, b) => a.Value != b.Value ? a.Value.CompareTo(b.Value) : a.Index.CompareTo(b.Index));
        return result;
    }

    /// <summary>Parses an object from memory; throws <see cref="BpfObjectException"/> on a bad file.</summary>
    public static ElfFile Parse(ReadOnlySpan<byte> bytes, string name)
    {
        var elf = new ElfFile(name, bytes.ToArray());
        elf.ReadHeaders();
        elf.ReadSymbols();
        return elf;
    }

    /// <summary>Creates an error located in this file, optionally in a section and at an offset.</summary>
    public BpfObjectException Error(ElfSection? section, long? offset, string reason) =>
        new(Name, section?.Name, offset, reason);

    /// <summary>The contents of a section (empty for SHT_NOBITS).</summary>
    public ReadOnlySpan<byte> Data(ElfSection section) =>
        section.Type is ElfSectionType.NoBits or ElfSectionType.Null ? [] : _data.AsSpan((int)section.FileOffset, (int)section.Size);

    /// <summary>The first section with this name, or null.</summary>
    public ElfSection? FindSection(string name) => Sections.FirstOrDefault(s => s.Name == name);

    /// <summary>The section a symbol is defined in, or null for undefined, absolute and common symbols.</summary>
    public ElfSection? SectionOf(ElfSymbol symbol) =>
        symbol.SectionIndex is > 0 and < 0xff00 && symbol.SectionIndex < Sections.Count ? Sections[symbol.SectionIndex] : null;

    /// <summary>
    /// The relocations that apply to <paramref name="target"/>, from every SHT_REL and SHT_RELA section
    /// whose sh_info names it, ordered by offset.
    /// </summary>
    public IReadOnlyList<ElfRelocation> RelocationsFor(ElfSection target)
    {
        var result = new List<ElfRelocation>();
        foreach (var rel in Sections)
        {
            if (rel.Type is not (ElfSectionType.Rel or ElfSectionType.Rela) || rel.Info != target.Index) continue;
            bool rela = rel.Type == ElfSectionType.Rela;
            int entSize = rela ? 24 : 16;
            var data = Data(rel);
            if (data.Length % entSize != 0)
                throw Error(rel, null, $"size {data.Length} is not a multiple of the relocation entry size {entSize}");
            for (int off = 0; off < data.Length; off += entSize)
            {
                ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(data[off..]);
                ulong info = BinaryPrimitives.ReadUInt64LittleEndian(data[(off + 8)..]);
                long? addend = rela ? BinaryPrimitives.ReadInt64LittleEndian(data[(off + 16)..]) : null;
                uint symIndex = (uint)(info >> 32);
                if (symIndex >= Symbols.Count)
                    throw Error(rel, off, $"relocation refers to symbol {symIndex}, but the symbol table has {Symbols.Count}");
                if (offset >= target.Size && target.Type != ElfSectionType.NoBits)
                    throw Error(rel, off, $"relocation offset 0x{offset:x} is outside section {target.Name} (size 0x{target.Size:x})");
                result.Add(new ElfRelocation(offset, (ElfRelocationType)(uint)info, Symbols[(int)symIndex], addend, rel));
            }
        }
        result.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        return result;
    }

    void ReadHeaders()
    {
        var d = _data.AsSpan();
        if (d.Length < 4 || d[0] != 0x7f || d[1] != (byte)'E' || d[2] != (byte)'L' || d[3] != (byte)'F')
            throw Error(null, 0, "not an ELF file (bad magic)");
        if (d.Length < HeaderSize)
            throw Error(null, d.Length, $"truncated ELF header ({d.Length} of {HeaderSize} bytes)");
        if (d[4] != 2)
            throw Error(null, 4, d[4] == 1 ? "32-bit ELF is not an eBPF object (need ELF64)" : $"invalid ELF class {d[4]}");
        if (d[5] != 1)
            throw Error(null, 5, d[5] == 2 ? "big-endian eBPF objects are not supported (need little-endian, bpfel)" : $"invalid ELF data encoding {d[5]}");
        ushort type = U16(d, 16);
        ushort machine = U16(d, 18);
        if (machine != MachineBpf)
            throw Error(null, 18, $"machine {machine} is not eBPF (EM_BPF = {MachineBpf})");
        if (type != 1)
            throw Error(null, 16, $"ELF type {type} is not a relocatable object (ET_REL = 1)");

        ulong shoff = U64(d, 40);
        ushort shentsize = U16(d, 58);
        uint shnum = U16(d, 60);
        uint shstrndx = U16(d, 62);
        if (shoff == 0) throw Error(null, 40, "the object has no section header table");
        if (shentsize != SectionHeaderSize)
            throw Error(null, 58, $"section header size {shentsize} is not {SectionHeaderSize}");
        CheckRange(shoff, SectionHeaderSize, null, 40, "section header table");
        // Extended numbering: the real counts live in section 0.
        if (shnum == 0) shnum = checked((uint)Math.Min(U64(d, (int)shoff + 32), uint.MaxValue));
        if (shstrndx == 0xffff) shstrndx = U32(d, (int)shoff + 40);
        if (shnum > (d.Length - (long)shoff) / SectionHeaderSize)
            throw Error(null, (long)shoff, $"section header table ({shnum} entries) runs past the end of the file");

        var sections = new ElfSection[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int at = (int)shoff + i * SectionHeaderSize;
            var s = new ElfSection(
                i, "", U32(d, at), (ElfSectionType)U32(d, at + 4), (ElfSectionFlags)U64(d, at + 8),
                U64(d, at + 24), U64(d, at + 32), U32(d, at + 40), U32(d, at + 44), U64(d, at + 48), U64(d, at + 56));
            if (s.Type != ElfSectionType.NoBits && i != 0)
                CheckRange(s.FileOffset, s.Size, null, at, $"section {i}");
            sections[i] = s;
        }
        if (shstrndx >= shnum || sections[shstrndx].Type != ElfSectionType.StrTab)
            throw Error(null, 62, $"section name table index {shstrndx} is not a string table");
        var names = Data(sections[shstrndx]);
        for (int i = 0; i < sections.Length; i++)
        {
            string? name = ReadString(names, sections[i].NameOffset);
            if (name == null)
                throw Error(null, (long)shoff + i * SectionHeaderSize, $"section {i}: name offset {sections[i].NameOffset} is outside the name table");
            sections[i] = sections[i] with { Name = name };
        }
        Sections = sections;
    }

    void ReadSymbols()
    {
        var symtab = Sections.FirstOrDefault(s => s.Type == ElfSectionType.SymTab);
        if (symtab == null) return;
        if (symtab.Link >= Sections.Count || Sections[(int)symtab.Link].Type != ElfSectionType.StrTab)
            throw Error(symtab, null, $"symbol string table index {symtab.Link} is not a string table");
        var strings = Data(Sections[(int)symtab.Link]);
        var data = Data(symtab);
        if (data.Length % SymbolSize != 0)
            throw Error(symtab, null, $"size {data.Length} is not a multiple of the symbol size {SymbolSize}");
        var symbols = new ElfSymbol[data.Length / SymbolSize];
        for (int i = 0; i < symbols.Length; i++)
        {
            int at = i * SymbolSize;
            uint nameOff = U32(data, at);
            string name = ReadString(strings, nameOff)
                ?? throw Error(symtab, at, $"symbol {i}: name offset {nameOff} is outside the string table");
            byte info = data[at + 4];
            ushort shndx = U16(data, at + 6);
            if (shndx != 0 && shndx < 0xff00 && shndx >= Sections.Count)
                throw Error(symtab, at, $"symbol '{name}' is in section {shndx}, which does not exist (the object has {Sections.Count})");
            var sym = new ElfSymbol(i, name, (ElfSymbolBinding)(info >> 4), (ElfSymbolType)(info & 0xf), shndx, U64(data, at + 8), U64(data, at + 16));
            if (sym.Type == ElfSymbolType.Section && name.Length == 0 && shndx < Sections.Count)
                sym = sym with { Name = Sections[shndx].Name };
            symbols[i] = sym;
        }
        Symbols = symbols;
    }

    void CheckRange(ulong offset, ulong size, ElfSection? section, long where, string what)
    {
        if (offset > (ulong)_data.Length || size > (ulong)_data.Length - offset)
            throw Error(section, where, $"{what} (offset 0x{offset:x}, size 0x{size:x}) runs past the end of the file (0x{_data.Length:x} bytes)");
    }

    /// <summary>Reads a NUL-terminated UTF-8 string at <paramref name="offset"/>, or null when it is out of range or unterminated.</summary>
    internal static string? ReadString(ReadOnlySpan<byte> table, uint offset)
    {
        if (offset >= table.Length) return table.Length == 0 && offset == 0 ? "" : null;
        var rest = table[(int)offset..];
        int end = rest.IndexOf((byte)0);
        return end < 0 ? null : System.Text.Encoding.UTF8.GetString(rest[..end]);
    }

    static ushort U16(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt16LittleEndian(d[at..]);
    static uint U32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);
    static ulong U64(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt64LittleEndian(d[at..]);
}
