using System.Buffers.Binary;
using BpfJit.Frontend.Elf;

namespace BpfJit.Frontend.Btf;

/// <summary>
/// The parsed <c>.BTF</c> section of an object: every type and the string table. It names and sizes
/// types (enough to resolve BTF-defined maps) and, with <see cref="Ext"/>, holds the function and
/// line information of <c>.BTF.ext</c>.
/// </summary>
public sealed class BtfSpec
{
    /// <summary>The magic number at the start of .BTF and .BTF.ext.</summary>
    public const ushort Magic = 0xeb9f;

    const int MaxChain = 64;

    readonly byte[] _strings;
    readonly BtfType[] _types;

    BtfSpec(string file, byte[] strings, BtfType[] types)
    {
        File = file;
        _strings = strings;
        _types = types;
    }

    /// <summary>The object file name, for error messages.</summary>
    public string File { get; }

    /// <summary>All types; index 0 is void, so a type's id is its index.</summary>
    public IReadOnlyList<BtfType> Types => _types;

    /// <summary>Function, line and CO-RE relocation records from .BTF.ext, when the object has it.</summary>
    public BtfExtInfo? Ext { get; internal set; }

    /// <summary>Parses the contents of a .BTF section; throws <see cref="BpfObjectException"/> on a bad one.</summary>
    public static BtfSpec Parse(ReadOnlySpan<byte> data, string file) => BtfParser.Parse(data, file);

    internal static BtfSpec Create(string file, byte[] strings, BtfType[] types) => new(file, strings, types);

    /// <summary>The type with this id; throws <see cref="BpfObjectException"/> when there is none.</summary>
    public BtfType Type(uint id) =>
        id < _types.Length ? _types[id] : throw Error($"type id {id} is out of range (the object has {_types.Length - 1} types)");

    /// <summary>The string at <paramref name="offset"/> of the string section, or null when out of range.</summary>
    public string? String(uint offset) => ElfFile.ReadString(_strings, offset);

    /// <summary>All types with this name (and kind, when given).</summary>
    public IEnumerable<BtfType> FindByName(string name, BtfKind? kind = null) =>
        _types.Where(t => t.Name == name && (kind == null || t.Kind == kind));

    /// <summary>The DATASEC describing an ELF section, or null.</summary>
    public BtfType? Datasec(string sectionName) => FindByName(sectionName, BtfKind.Datasec).FirstOrDefault();

    /// <summary>Follows typedefs, qualifiers and type tags to the underlying type.</summary>
    public BtfType Resolve(uint id)
    {
        var t = Type(id);
        for (int i = 0; i < MaxChain; i++)
        {
            if (t.Kind is not (BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag))
                return t;
            t = Type(t.SizeOrType);
        }
        throw Error($"type id {id}: typedef or qualifier chain is longer than {MaxChain} (a loop?)");
    }

    /// <summary>The size in bytes of a type (pointers are 8 bytes); throws for types without a size.</summary>
    public ulong Size(uint id) => Size(id, 0);

    ulong Size(uint id, int depth)
    {
        if (depth > MaxChain) throw Error($"type id {id}: type nesting is deeper than {MaxChain} (a loop?)");
        var t = Resolve(id);
        return t.Kind switch
        {
            BtfKind.Ptr => 8,
            BtfKind.Array => checked(Size(t.ElementType, depth + 1) * t.ElementCount),
            BtfKind.Var => Size(t.SizeOrType, depth + 1),
            _ when t.HasSize => t.SizeOrType,
            _ => throw Error($"type id {id} ({t.Kind.ToString().ToUpperInvariant()} '{t.Name}') has no size"),
        };
    }

    /// <summary>A C-like name for a type: <c>struct addr</c>, <c>__u32</c>, <c>u64 *</c>, <c>char[16]</c>.</summary>
    public string TypeName(uint id) => TypeName(id, 0);

    string TypeName(uint id, int depth)
    {
        if (depth > MaxChain) return "...";
        if (id >= _types.Length) return $"<bad type {id}>";
        var t = _types[id];
        string Named(string prefix) => t.Name.Length > 0 ? $"{prefix}{t.Name}" : $"{prefix}<anon>";
        return t.Kind switch
        {
            BtfKind.Void => "void",
            BtfKind.Int or BtfKind.Float or BtfKind.Typedef => t.Name,
            BtfKind.Struct => Named("struct "),
            BtfKind.Union => Named("union "),
            BtfKind.Enum or BtfKind.Enum64 => Named("enum "),
            BtfKind.Fwd => Named(t.KindFlag ? "union " : "struct "),
            BtfKind.Ptr => TypeName(t.SizeOrType, depth + 1) + " *",
            BtfKind.Const => "const " + TypeName(t.SizeOrType, depth + 1),
            BtfKind.Volatile => "volatile " + TypeName(t.SizeOrType, depth + 1),
            BtfKind.Restrict => TypeName(t.SizeOrType, depth + 1) + " restrict",
            BtfKind.TypeTag => TypeName(t.SizeOrType, depth + 1),
            BtfKind.Array => $"{TypeName(t.ElementType, depth + 1)}[{t.ElementCount}]",
            BtfKind.Func or BtfKind.Var or BtfKind.Datasec or BtfKind.DeclTag => t.Name,
            BtfKind.FuncProto => $"{TypeName(t.SizeOrType, depth + 1)} (*)({string.Join(", ", t.Params.Select(p => p.TypeId == 0 ? "..." : TypeName(p.TypeId, depth + 1)))})",
            _ => t.Name,
        };
    }

    /// <summary>An error located in this object's .BTF section.</summary>
    internal BpfObjectException Error(string reason) => new(File, ".BTF", null, reason);
}

/// <summary>Reads the binary .BTF format: header, type section, string section.</summary>
static class BtfParser
{
    const int HeaderSize = 24;

    public static BtfSpec Parse(ReadOnlySpan<byte> data, string file)
    {
        BpfObjectException Fail(long? offset, string reason) => new(file, ".BTF", offset, reason);

        if (data.Length < HeaderSize) throw Fail(0, $"truncated header ({data.Length} of {HeaderSize} bytes)");
        ushort magic = BinaryPrimitives.ReadUInt16LittleEndian(data);
        if (magic != BtfSpec.Magic)
            throw Fail(0, magic == 0x9feb ? "big-endian BTF is not supported" : $"bad magic 0x{magic:x4}");
        if (data[2] != 1) throw Fail(2, $"unsupported BTF version {data[2]}");
        uint hdrLen = U32(data, 4);
        uint typeOff = U32(data, 8), typeLen = U32(data, 12), strOff = U32(data, 16), strLen = U32(data, 20);
        if (hdrLen < HeaderSize || hdrLen > data.Length) throw Fail(4, $"bad header length {hdrLen}");
        var body = data[(int)hdrLen..];
        if ((ulong)typeOff + typeLen > (ulong)body.Length)
            throw Fail(hdrLen + typeOff, $"type section (0x{typeLen:x} bytes) runs past the end of .BTF");
        if ((ulong)strOff + strLen > (ulong)body.Length)
            throw Fail(hdrLen + strOff, $"string section (0x{strLen:x} bytes) runs past the end of .BTF");
        var strings = body.Slice((int)strOff, (int)strLen).ToArray();
        if (strings.Length > 0 && (strings[0] != 0 || strings[^1] != 0))
            throw Fail(hdrLen + strOff, "string section must start and end with NUL");

        byte[] typeData = body.Slice((int)typeOff, (int)typeLen).ToArray();
        var types = new List<BtfType> { new(0, BtfKind.Void, "", false, 0, 0) };
        int pos = 0;
        while (pos < typeData.Length)
        {
            long where = hdrLen + typeOff + pos;
            if (typeData.Length - pos < 12) throw Fail(where, "truncated type record");
            uint nameOff = U32(typeData, pos), info = U32(typeData, pos + 4), sizeOrType = U32(typeData, pos + 8);
            pos += 12;
            var kind = (BtfKind)((info >> 24) & 0x1f);
            int vlen = (int)(info & 0xffff);
            bool kflag = (info >> 31) != 0;
            uint id = (uint)types.Count;
            string name = ElfFile.ReadString(strings, nameOff)
                ?? throw Fail(where, $"type id {id}: name offset {nameOff} is outside the string section");

            int Need(int bytes)
            {
                if (typeData.Length - pos < bytes) throw Fail(where, $"type id {id} ({kind}): truncated ({bytes} more bytes needed)");
                int at = pos;
                pos += bytes;
                return at;
            }
            string Str(uint off) => ElfFile.ReadString(strings, off)
                ?? throw Fail(where, $"type id {id}: name offset {off} is outside the string section");

            BtfType t;
            switch (kind)
            {
                case BtfKind.Int:
                {
                    int at = Need(4);
                    uint enc = U32(typeData, at);
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType)
                    {
                        IntEncoding = (int)((enc >> 24) & 0x0f),
                        IntOffset = (int)((enc >> 16) & 0xff),
                        IntBits = (int)(enc & 0xff),
                    };
                    break;
                }
                case BtfKind.Ptr or BtfKind.Fwd or BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const
                    or BtfKind.Restrict or BtfKind.Func or BtfKind.Float or BtfKind.TypeTag:
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { Linkage = kind == BtfKind.Func ? (uint)vlen : 0 };
                    break;
                case BtfKind.Array:
                {
                    int at = Need(12);
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType)
                    {
                        ElementType = U32(typeData, at), IndexType = U32(typeData, at + 4), ElementCount = U32(typeData, at + 8),
                    };
                    break;
                }
                case BtfKind.Struct or BtfKind.Union:
                {
                    var members = new BtfMember[vlen];
                    for (int i = 0; i < vlen; i++)
                    {
                        int at = Need(12);
                        uint off = U32(typeData, at + 8);
                        members[i] = kflag
                            ? new BtfMember(Str(U32(typeData, at)), U32(typeData, at + 4), off & 0xffffff, off >> 24)
                            : new BtfMember(Str(U32(typeData, at)), U32(typeData, at + 4), off, 0);
                    }
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { Members = members };
                    break;
                }
                case BtfKind.Enum:
                {
                    var values = new BtfEnumValue[vlen];
                    for (int i = 0; i < vlen; i++)
                    {
                        int at = Need(8);
                        uint raw = U32(typeData, at + 4);
                        values[i] = new BtfEnumValue(Str(U32(typeData, at)), kflag ? (int)raw : raw);
                    }
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { EnumValues = values };
                    break;
                }
                case BtfKind.Enum64:
                {
                    var values = new BtfEnumValue[vlen];
                    for (int i = 0; i < vlen; i++)
                    {
                        int at = Need(12);
                        ulong raw = U32(typeData, at + 4) | ((ulong)U32(typeData, at + 8) << 32);
                        values[i] = new BtfEnumValue(Str(U32(typeData, at)), (long)raw);
                    }
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { EnumValues = values };
                    break;
                }
                case BtfKind.FuncProto:
                {
                    var ps = new BtfParam[vlen];
                    for (int i = 0; i < vlen; i++)
                    {
                        int at = Need(8);
                        ps[i] = new BtfParam(Str(U32(typeData, at)), U32(typeData, at + 4));
                    }
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { Params = ps };
                    break;
                }
                case BtfKind.Var:
                {
                    int at = Need(4);
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { Linkage = U32(typeData, at) };
                    break;
                }
                case BtfKind.Datasec:
                {
                    var vars = new BtfVarSecInfo[vlen];
                    for (int i = 0; i < vlen; i++)
                    {
                        int at = Need(12);
                        vars[i] = new BtfVarSecInfo(U32(typeData, at), U32(typeData, at + 4), U32(typeData, at + 8));
                    }
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { Variables = vars };
                    break;
                }
                case BtfKind.DeclTag:
                {
                    int at = Need(4);
                    t = new BtfType(id, kind, name, kflag, vlen, sizeOrType) { ComponentIndex = (int)U32(typeData, at) };
                    break;
                }
                default:
                    throw Fail(where, $"type id {id}: unknown BTF kind {(int)kind}");
            }
            types.Add(t);
        }

        var all = types.ToArray();
        CheckReferences(all, file);
        return BtfSpec.Create(file, strings, all);
    }

    /// <summary>Every type id a type refers to must exist, so later lookups cannot go out of range.</summary>
    static void CheckReferences(BtfType[] types, string file)
    {
        void Check(BtfType t, uint target, string what)
        {
            if (target >= types.Length)
                throw new BpfObjectException(file, ".BTF", null, $"type id {t.Id} ({t.Kind.ToString().ToUpperInvariant()} '{t.Name}'): {what} refers to missing type id {target}");
        }
        foreach (var t in types)
        {
            if (t.HasTypeRef) Check(t, t.SizeOrType, "type");
            if (t.Kind == BtfKind.Array)
            {
                Check(t, t.ElementType, "element type");
                Check(t, t.IndexType, "index type");
            }
            foreach (var m in t.Members) Check(t, m.TypeId, $"member '{m.Name}'");
            foreach (var p in t.Params) Check(t, p.TypeId, $"parameter '{p.Name}'");
            foreach (var v in t.Variables) Check(t, v.TypeId, "variable");
        }
    }

    static uint U32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);
}
