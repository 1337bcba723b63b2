using System.Buffers.Binary;
using BpfJit.Frontend.Elf;

namespace BpfJit.Frontend.Btf;

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
            foreach (var m in BtfLists.Items(t.Members)) Check(t, m.TypeId, $"member '{m.Name}'");
            foreach (var p in BtfLists.Items(t.Params)) Check(t, p.TypeId, $"parameter '{p.Name}'");
            foreach (var v in BtfLists.Items(t.Variables)) Check(t, v.TypeId, "variable");
        }
    }

    static uint U32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);
}
