namespace BpfJit.Frontend.Elf;

/// <summary>ELF section types (sh_type) that matter to an eBPF object.</summary>
public enum ElfSectionType : uint
{
    /// <summary>SHT_NULL: unused entry.</summary>
    Null = 0,
    /// <summary>SHT_PROGBITS: code or data.</summary>
    ProgBits = 1,
    /// <summary>SHT_SYMTAB: the symbol table.</summary>
    SymTab = 2,
    /// <summary>SHT_STRTAB: a string table.</summary>
    StrTab = 3,
    /// <summary>SHT_RELA: relocations with explicit addends.</summary>
    Rela = 4,
    /// <summary>SHT_NOBITS: zero-initialised data that takes no file space (.bss).</summary>
    NoBits = 8,
    /// <summary>SHT_REL: relocations with implicit addends (what clang emits for BPF).</summary>
    Rel = 9,
}

/// <summary>ELF section flags (sh_flags).</summary>
[Flags]
public enum ElfSectionFlags : ulong
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>SHF_WRITE: writable at run time.</summary>
    Write = 1,
    /// <summary>SHF_ALLOC: occupies memory at run time.</summary>
    Alloc = 2,
    /// <summary>SHF_EXECINSTR: holds instructions.</summary>
    ExecInstr = 4,
}

/// <summary>Symbol binding (the high nibble of st_info).</summary>
public enum ElfSymbolBinding : byte
{
    /// <summary>STB_LOCAL.</summary>
    Local = 0,
    /// <summary>STB_GLOBAL.</summary>
    Global = 1,
    /// <summary>STB_WEAK.</summary>
    Weak = 2,
}

/// <summary>Symbol type (the low nibble of st_info).</summary>
public enum ElfSymbolType : byte
{
    /// <summary>STT_NOTYPE (labels, extern declarations).</summary>
    NoType = 0,
    /// <summary>STT_OBJECT: a variable or map definition.</summary>
    Object = 1,
    /// <summary>STT_FUNC: a function.</summary>
    Func = 2,
    /// <summary>STT_SECTION: stands for a section.</summary>
    Section = 3,
    /// <summary>STT_FILE: the source file name.</summary>
    File = 4,
}

/// <summary>eBPF relocation types (r_info low 32 bits), from the LLVM BPF backend.</summary>
public enum ElfRelocationType : uint
{
    /// <summary>R_BPF_NONE.</summary>
    None = 0,
    /// <summary>R_BPF_64_64: the 64-bit immediate of an ld_imm64 (map or global-data address).</summary>
    Bpf64_64 = 1,
    /// <summary>R_BPF_64_ABS64: a 64-bit absolute address in data (debug info, map-in-map initialisers).</summary>
    Bpf64Abs64 = 2,
    /// <summary>R_BPF_64_ABS32: a 32-bit absolute address in data (debug info, BTF).</summary>
    Bpf64Abs32 = 3,
    /// <summary>R_BPF_64_NODYLD32: a 32-bit value that a dynamic loader must leave alone (.BTF, .BTF.ext).</summary>
    Bpf64NoDyld32 = 4,
    /// <summary>R_BPF_64_32: the immediate of a bpf-to-bpf call.</summary>
    Bpf64_32 = 10,
}

/// <summary>One section header. <see cref="Index"/> is its position in the section header table.</summary>
/// <param name="Index">Section number.</param>
/// <param name="Name">Section name from the section name table.</param>
/// <param name="NameOffset">sh_name.</param>
/// <param name="Type">sh_type.</param>
/// <param name="Flags">sh_flags.</param>
/// <param name="FileOffset">sh_offset.</param>
/// <param name="Size">sh_size.</param>
/// <param name="Link">sh_link.</param>
/// <param name="Info">sh_info (for relocation sections, the section they apply to).</param>
/// <param name="Alignment">sh_addralign.</param>
/// <param name="EntrySize">sh_entsize.</param>
public sealed record ElfSection(
    int Index, string Name, uint NameOffset, ElfSectionType Type, ElfSectionFlags Flags,
    ulong FileOffset, ulong Size, uint Link, uint Info, ulong Alignment, ulong EntrySize)
{
    /// <summary>True for sections holding instructions.</summary>
    public bool IsExecutable => (Flags & ElfSectionFlags.ExecInstr) != 0 && Type == ElfSectionType.ProgBits;
}

/// <summary>One symbol table entry.</summary>
/// <param name="Index">Symbol number.</param>
/// <param name="Name">Name (for section symbols, the section's name).</param>
/// <param name="Binding">Local, global or weak.</param>
/// <param name="Type">Function, object, section, ...</param>
/// <param name="SectionIndex">st_shndx (0 = undefined).</param>
/// <param name="Value">st_value: offset inside its section.</param>
/// <param name="Size">st_size.</param>
public sealed record ElfSymbol(int Index, string Name, ElfSymbolBinding Binding, ElfSymbolType Type, ushort SectionIndex, ulong Value, ulong Size);

/// <summary>One relocation entry, with its symbol resolved.</summary>
/// <param name="Offset">Byte offset inside the target section.</param>
/// <param name="Type">Relocation type.</param>
/// <param name="Symbol">The referenced symbol.</param>
/// <param name="Addend">The explicit addend of a RELA entry; null for REL (the addend is in the patched field).</param>
/// <param name="Source">The relocation section the entry came from.</param>
public sealed record ElfRelocation(ulong Offset, ElfRelocationType Type, ElfSymbol Symbol, long? Addend, ElfSection Source);
