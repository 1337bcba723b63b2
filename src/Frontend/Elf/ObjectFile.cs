using System.Buffers.Binary;
using BpfJit.Frontend.Btf;

namespace BpfJit.Frontend.Elf;

/// <summary>
/// Loads an eBPF ELF object (what <c>clang -target bpf -c</c> produces) into a <see cref="CollectionSpec"/>.
/// Nothing is verified, compiled or created: later stages verify and compile the programs and bind
/// the map references to live maps. Every problem with the file is a <see cref="BpfObjectException"/>.
/// </summary>
public static class ObjectFile
{
    /// <summary>Reads and parses an object file; errors and <see cref="CollectionSpec.FileName"/> name it as <paramref name="path"/> is given.</summary>
    public static CollectionSpec Load(string path)
    {
        byte[] bytes;
        try { bytes = InputFile.ReadBytes(path, InputFile.MaxObjectBytes, "ELF object"); }
        catch (BpfInputException e) { throw new BpfObjectException(path, null, null, e.Reason, e); }
        if (InputFile.Kind(bytes) != InputKind.Elf)
            throw new BpfObjectException(path, null, null, $"not an ELF object ({InputFile.Describe(bytes)})");
        return Parse(bytes, path);
    }

    /// <summary>Parses an object held in memory; <paramref name="name"/> is used in error messages.</summary>
    public static CollectionSpec Parse(ReadOnlySpan<byte> bytes, string name)
    {
        var elf = ElfFile.Parse(bytes, name);
        CheckDataRelocations(elf);
        string license = ReadLicense(elf);
        uint? version = ReadVersion(elf);
        var btf = ReadBtf(elf);
        var maps = MapLoader.Load(elf, btf);
        var programs = ProgramLoader.Load(elf, maps, btf, license, version);
        CheckProgramSlots(elf, maps.Maps, programs);
        return new CollectionSpec
        {
            FileName = name,
            Programs = new ProgramSpecList(programs),
            Maps = new MapSpecList(maps.Maps),
            License = license,
            KernelVersion = version,
            Btf = btf,
        };
    }

    /// <summary>A PROG_ARRAY's initial slots may only name entry-point programs (libbpf's rule), not subprograms.</summary>
    static void CheckProgramSlots(ElfFile elf, IReadOnlyList<MapSpec> maps, List<ProgramSpec> programs)
    {
        foreach (var map in maps)
        {
            // Most maps have no initial programs: skip LINQ's sorter, framework generic code over uint keys that no
            // ReadyToRun image holds (the JIT compiled it in every process's first load; docs/perf.md, "Cold start").
            if (map.InitialPrograms.Count == 0) continue;
            foreach (var (slot, name) in map.InitialPrograms.OrderBy(e => e.Key))
            {
                if (!programs.Exists(p => p.Name == name))
                    throw elf.Error(elf.FindSection(map.SectionName), null, $"map '{map.Name}': slot {slot}: '{name}' isn't an entry-point program");
            }
        }
    }

    /// <summary>libbpf's <c>obj->license</c> is 64 bytes with its NUL.</summary>
    const int MaxLicenseLength = 63;

    static string ReadLicense(ElfFile elf)
    {
        var s = elf.FindSection("license");
        if (s == null) return "";
        // As libbpf: the string is copied up to its NUL or the section's end, whichever comes first (a section
        // without a NUL is accepted), into its 64-byte obj->license, so at most 63 characters reach the kernel.
        var data = elf.Data(s);
        int end = data.IndexOf((byte)0);
        if (end < 0) end = data.Length;
        return System.Text.Encoding.UTF8.GetString(data[..Math.Min(end, MaxLicenseLength)]);
    }

    static uint? ReadVersion(ElfFile elf)
    {
        var s = elf.FindSection("version");
        if (s == null) return null;
        var data = elf.Data(s);
        if (data.Length != 4) throw elf.Error(s, 0, $"version section is {data.Length} bytes, expected 4");
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    static BtfSpec? ReadBtf(ElfFile elf)
    {
        var s = elf.FindSection(".BTF");
        if (s == null) return null;
        var btf = BtfSpec.Parse(elf.Data(s), elf.Name);
        var ext = elf.FindSection(".BTF.ext");
        if (ext != null) btf.Ext = BtfExtInfo.Parse(elf.Data(ext), btf);
        return btf;
    }

    /// <summary>
    /// Relocations outside code: in .BTF, .BTF.ext and debug sections they are ignored (the values
    /// the loader needs are section-relative already); in map or global-data sections they would make
    /// an initial value depend on a symbol's address, which is not supported. Unknown types are refused everywhere.
    /// </summary>
    static void CheckDataRelocations(ElfFile elf)
    {
        foreach (var rel in elf.Sections.Where(s => s.Type is ElfSectionType.Rel or ElfSectionType.Rela))
        {
            if (rel.Info == 0 || rel.Info >= elf.Sections.Count)
                throw elf.Error(rel, null, $"relocation section applies to missing section {rel.Info}");
            if (rel.Link >= elf.Sections.Count || elf.Sections[(int)rel.Link].Type != ElfSectionType.SymTab)
                throw elf.Error(rel, null, $"relocation section's symbol table index {rel.Link} is not a symbol table");
            var target = elf.Sections[(int)rel.Info];
            if (target.IsExecutable) continue;
            foreach (var r in elf.RelocationsFor(target).Where(r => r.Source == rel))
            {
                // The defined types but None, named: Enum.IsDefined costs reflection and a RyuJIT compile at the first object.
                if (r.Type is not (ElfRelocationType.Bpf64_64 or ElfRelocationType.Bpf64Abs64 or ElfRelocationType.Bpf64Abs32 or ElfRelocationType.Bpf64NoDyld32 or ElfRelocationType.Bpf64_32))
                    throw elf.Error(target, (long)r.Offset, $"unsupported relocation type {ProgramLoader.DescribeType(r.Type)} (symbol '{r.Symbol.Name}')");
                // .maps relocations initialise map-in-map 'values'; MapLoader reports those by map name.
                if (target.Name == "maps" || MapLoader.IsGlobalData(target))
                    throw elf.Error(target, (long)r.Offset, $"relocation {ProgramLoader.DescribeType(r.Type)} against '{r.Symbol.Name}': pointers in map definitions or global data are not supported");
            }
        }
    }
}
