using System.Buffers.Binary;
using BpfJit.Frontend.Elf;

namespace BpfJit.Frontend.Btf;

/// <summary>CO-RE relocation kinds (enum bpf_core_relo_kind).</summary>
public enum CoreRelocationKind : uint
{
    /// <summary>Field byte offset.</summary>
    FieldByteOffset = 0,
    /// <summary>Field size in bytes.</summary>
    FieldByteSize = 1,
    /// <summary>Whether the field exists in the target kernel.</summary>
    FieldExists = 2,
    /// <summary>Whether the field is signed.</summary>
    FieldSigned = 3,
    /// <summary>Bitfield left shift.</summary>
    FieldLShiftU64 = 4,
    /// <summary>Bitfield right shift.</summary>
    FieldRShiftU64 = 5,
    /// <summary>Local type id.</summary>
    TypeIdLocal = 6,
    /// <summary>Target type id.</summary>
    TypeIdTarget = 7,
    /// <summary>Whether the type exists in the target kernel.</summary>
    TypeExists = 8,
    /// <summary>Type size.</summary>
    TypeSize = 9,
    /// <summary>Whether an enumerator exists.</summary>
    EnumValueExists = 10,
    /// <summary>Enumerator value.</summary>
    EnumValueValue = 11,
    /// <summary>Whether the type matches the target's.</summary>
    TypeMatches = 12,
}

/// <summary>A function's start and BTF FUNC type (a .BTF.ext func_info record).</summary>
/// <param name="InstructionOffset">Slot index of the function's first instruction, relative to its section or program.</param>
/// <param name="TypeId">The BTF FUNC type.</param>
/// <param name="Name">The function's name from BTF.</param>
public sealed record BtfFuncInfo(int InstructionOffset, uint TypeId, string Name);

/// <summary>The source line an instruction came from (a .BTF.ext line_info record).</summary>
/// <param name="InstructionOffset">Slot index, relative to its section or program.</param>
/// <param name="FileName">Source file name.</param>
/// <param name="Line">The text of the source line.</param>
/// <param name="LineNumber">1-based line number.</param>
/// <param name="Column">1-based column (0 when unknown).</param>
public sealed record BtfLineInfo(int InstructionOffset, string FileName, string Line, int LineNumber, int Column);

/// <summary>A CO-RE relocation record; the loader applies it against BpfJit's target types (CoreRelocator).</summary>
/// <param name="InstructionOffset">Slot index of the instruction to patch, relative to its section or program.</param>
/// <param name="TypeId">The local root type.</param>
/// <param name="AccessString">The access path, e.g. <c>0:1:2</c>.</param>
/// <param name="Kind">What the relocation asks for.</param>
public sealed record BtfCoreRelocation(int InstructionOffset, uint TypeId, string AccessString, CoreRelocationKind Kind);

/// <summary>The parsed .BTF.ext section: per-section function, line and CO-RE relocation records.</summary>
public sealed class BtfExtInfo
{
    /// <summary>func_info records by ELF section name, offsets relative to the section.</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<BtfFuncInfo>> FuncInfos { get; init; }

    /// <summary>line_info records by ELF section name, offsets relative to the section.</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<BtfLineInfo>> LineInfos { get; init; }

    /// <summary>CO-RE relocation records by ELF section name, offsets relative to the section.</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<BtfCoreRelocation>> CoreRelocations { get; init; }

    /// <summary>Parses .BTF.ext; strings refer to <paramref name="btf"/>'s string section.</summary>
    public static BtfExtInfo Parse(ReadOnlySpan<byte> bytes, BtfSpec btf)
    {
        byte[] data = bytes.ToArray();
        BpfObjectException Fail(long offset, string reason) => new(btf.File, ".BTF.ext", offset, reason);
        if (data.Length < 24) throw Fail(0, $"truncated header ({data.Length} bytes)");
        if (BinaryPrimitives.ReadUInt16LittleEndian(data) != BtfSpec.Magic) throw Fail(0, "bad magic");
        if (data[2] != 1) throw Fail(2, $"unsupported version {data[2]}");
        uint hdrLen = U32(data, 4);
        if (hdrLen < 24 || hdrLen > data.Length) throw Fail(4, $"bad header length {hdrLen}");
        byte[] body = data[(int)hdrLen..];
        long bodyStart = hdrLen;

        ReadOnlySpan<byte> Part(int headerAt, string what)
        {
            uint off = U32(data, headerAt), len = U32(data, headerAt + 4);
            if ((ulong)off + len > (ulong)body.Length)
                throw Fail(bodyStart + off, $"{what} (0x{len:x} bytes) runs past the end of .BTF.ext");
            return body.AsSpan((int)off, (int)len);
        }

        string Str(uint off, long where) => btf.String(off) ?? throw Fail(where, $"string offset {off} is outside the BTF string section");

        var funcs = ReadRecords(Part(8, "func_info"), bodyStart + U32(data, 8), 8, "func_info", Fail, Str, (rec, where) =>
        {
            uint typeId = U32(rec, 4);
            string name = typeId < btf.Types.Count ? btf.Types[(int)typeId].Name
                : throw Fail(where, $"func_info refers to missing type id {typeId}");
            return new BtfFuncInfo(Slot(U32(rec, 0), where, Fail), typeId, name);
        });
        var lines = ReadRecords(Part(16, "line_info"), bodyStart + U32(data, 16), 16, "line_info", Fail, Str, (rec, where) =>
        {
            uint lineCol = U32(rec, 12);
            return new BtfLineInfo(Slot(U32(rec, 0), where, Fail), Str(U32(rec, 4), where), Str(U32(rec, 8), where),
                (int)(lineCol >> 10), (int)(lineCol & 0x3ff));
        });
        var cores = new Dictionary<string, IReadOnlyList<BtfCoreRelocation>>();
        if (hdrLen >= 32)
        {
            cores = ReadRecords(Part(24, "core_relo"), bodyStart + U32(data, 24), 16, "core_relo", Fail, Str, (rec, where) =>
            {
                uint kind = U32(rec, 12);
                if (kind > (uint)CoreRelocationKind.TypeMatches) throw Fail(where, $"unknown CO-RE relocation kind {kind}");
                return new BtfCoreRelocation(Slot(U32(rec, 0), where, Fail), U32(rec, 4), Str(U32(rec, 8), where), (CoreRelocationKind)kind);
            });
        }
        return new BtfExtInfo { FuncInfos = funcs, LineInfos = lines, CoreRelocations = cores };
    }

    static int Slot(uint byteOffset, long where, Func<long, string, BpfObjectException> fail)
    {
        if (byteOffset % Instruction.Size != 0 || byteOffset > int.MaxValue)
            throw fail(where, $"instruction offset 0x{byteOffset:x} is not a multiple of {Instruction.Size}");
        return (int)(byteOffset / Instruction.Size);
    }

    delegate T RecordReader<T>(ReadOnlySpan<byte> record, long where);

    /// <summary>Reads one info part: a record size, then per-section blocks of (section name, count, records).</summary>
    static Dictionary<string, IReadOnlyList<T>> ReadRecords<T>(
        ReadOnlySpan<byte> part, long partStart, int minRecordSize, string what,
        Func<long, string, BpfObjectException> fail, Func<uint, long, string> str, RecordReader<T> read)
    {
        var result = new Dictionary<string, IReadOnlyList<T>>();
        if (part.Length == 0) return result;
        if (part.Length < 4) throw fail(partStart, $"{what}: truncated record size");
        uint recSize = U32(part, 0);
        if (recSize < minRecordSize || recSize > 1024) throw fail(partStart, $"{what}: bad record size {recSize}");
        int pos = 4;
        while (pos < part.Length)
        {
            long where = partStart + pos;
            if (part.Length - pos < 8) throw fail(where, $"{what}: truncated section header");
            string section = str(U32(part, pos), where);
            uint count = U32(part, pos + 4);
            pos += 8;
            if ((ulong)count * recSize > (ulong)(part.Length - pos))
                throw fail(where, $"{what}: section {section}: {count} records run past the end of the part");
            var list = result.TryGetValue(section, out var existing) ? existing.ToList() : new List<T>();
            for (int i = 0; i < count; i++)
            {
                list.Add(read(part.Slice(pos, (int)recSize), partStart + pos));
                pos += (int)recSize;
            }
            result[section] = list;
        }
        return result;
    }

    static uint U32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);
}
