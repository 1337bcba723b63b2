namespace BpfJit.Frontend.Btf;

/// <summary>BTF type kinds (include/uapi/linux/btf.h).</summary>
public enum BtfKind : byte
{
    /// <summary>The void type (id 0 only).</summary>
    Void = 0,
    /// <summary>Integer.</summary>
    Int = 1,
    /// <summary>Pointer.</summary>
    Ptr = 2,
    /// <summary>Array.</summary>
    Array = 3,
    /// <summary>Struct.</summary>
    Struct = 4,
    /// <summary>Union.</summary>
    Union = 5,
    /// <summary>32-bit enumeration.</summary>
    Enum = 6,
    /// <summary>Forward declaration of a struct or union.</summary>
    Fwd = 7,
    /// <summary>Typedef.</summary>
    Typedef = 8,
    /// <summary>Volatile qualifier.</summary>
    Volatile = 9,
    /// <summary>Const qualifier.</summary>
    Const = 10,
    /// <summary>Restrict qualifier.</summary>
    Restrict = 11,
    /// <summary>Function (name plus a FUNC_PROTO).</summary>
    Func = 12,
    /// <summary>Function prototype.</summary>
    FuncProto = 13,
    /// <summary>Variable.</summary>
    Var = 14,
    /// <summary>Data section (lists the variables in an ELF section).</summary>
    Datasec = 15,
    /// <summary>Floating point.</summary>
    Float = 16,
    /// <summary>Declaration tag.</summary>
    DeclTag = 17,
    /// <summary>Type tag.</summary>
    TypeTag = 18,
    /// <summary>64-bit enumeration.</summary>
    Enum64 = 19,
}

/// <summary>A member of a struct or union.</summary>
/// <param name="Name">Member name ("" for anonymous members).</param>
/// <param name="TypeId">The member's type.</param>
/// <param name="BitOffset">Offset from the start of the struct, in bits.</param>
/// <param name="BitfieldSize">Bitfield width in bits, or 0 for an ordinary member.</param>
public readonly record struct BtfMember(string Name, uint TypeId, uint BitOffset, uint BitfieldSize);

/// <summary>A function prototype parameter.</summary>
/// <param name="Name">Parameter name ("" when unnamed).</param>
/// <param name="TypeId">Parameter type (0 with an empty name marks a variadic "...").</param>
public readonly record struct BtfParam(string Name, uint TypeId);

/// <summary>An enumerator of ENUM or ENUM64.</summary>
/// <param name="Name">Enumerator name.</param>
/// <param name="Value">Value (sign-extended for signed 32-bit enums).</param>
public readonly record struct BtfEnumValue(string Name, long Value);

/// <summary>A variable placed in a DATASEC.</summary>
/// <param name="TypeId">The VAR (or FUNC for externs) type id.</param>
/// <param name="Offset">Byte offset inside the section.</param>
/// <param name="Size">Size in bytes.</param>
public readonly record struct BtfVarSecInfo(uint TypeId, uint Offset, uint Size);

/// <summary>
/// One BTF type. Every kind shares the name, the kind, the kind flag, vlen and the size-or-type word;
/// the kind-specific data is in the optional lists and fields, which are empty for other kinds.
/// </summary>
public sealed class BtfType
{
    /// <summary>Creates a type record. Used by the parser.</summary>
    public BtfType(uint id, BtfKind kind, string name, bool kindFlag, int vlen, uint sizeOrType)
    {
        Id = id;
        Kind = kind;
        Name = name;
        KindFlag = kindFlag;
        Vlen = vlen;
        SizeOrType = sizeOrType;
    }

    /// <summary>The type id (its position in the type section, starting at 1).</summary>
    public uint Id { get; }

    /// <summary>The kind.</summary>
    public BtfKind Kind { get; }

    /// <summary>The name ("" for anonymous types).</summary>
    public string Name { get; }

    /// <summary>The kind flag (bitfield encoding for structs, union for FWD, signedness for enums).</summary>
    public bool KindFlag { get; }

    /// <summary>vlen: the number of members, parameters, enumerators or variables (linkage for FUNC).</summary>
    public int Vlen { get; }

    /// <summary>The size in bytes (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT, ENUM64) or the referenced type id.</summary>
    public uint SizeOrType { get; }

    /// <summary>INT: bit encoding flags (1 = signed, 2 = char, 4 = bool).</summary>
    public int IntEncoding { get; init; }

    /// <summary>INT: number of value bits.</summary>
    public int IntBits { get; init; }

    /// <summary>INT: bit offset of the value.</summary>
    public int IntOffset { get; init; }

    /// <summary>ARRAY: element type.</summary>
    public uint ElementType { get; init; }

    /// <summary>ARRAY: index type.</summary>
    public uint IndexType { get; init; }

    /// <summary>ARRAY: number of elements.</summary>
    public uint ElementCount { get; init; }

    /// <summary>VAR: linkage (0 static, 1 global, 2 extern). FUNC: linkage, taken from vlen.</summary>
    public uint Linkage { get; init; }

    /// <summary>DECL_TAG: the member or parameter index, or -1 for the whole declaration.</summary>
    public int ComponentIndex { get; init; } = -1;

    // Empty lists of this assembly's own: Array.Empty over these structs (what `= []` gives) is framework code whose
    // static constructor RyuJIT compiles at a process's first object, once per struct (docs/perf.md, "Cold start").
    static readonly BtfMember[] s_noMembers = new BtfMember[0];
    static readonly BtfParam[] s_noParams = new BtfParam[0];
    static readonly BtfEnumValue[] s_noEnumValues = new BtfEnumValue[0];
    static readonly BtfVarSecInfo[] s_noVariables = new BtfVarSecInfo[0];

    /// <summary>STRUCT/UNION members.</summary>
    public IReadOnlyList<BtfMember> Members { get; init; } = s_noMembers;

    /// <summary>FUNC_PROTO parameters.</summary>
    public IReadOnlyList<BtfParam> Params { get; init; } = s_noParams;

    /// <summary>ENUM/ENUM64 enumerators.</summary>
    public IReadOnlyList<BtfEnumValue> EnumValues { get; init; } = s_noEnumValues;

    /// <summary>DATASEC variables.</summary>
    public IReadOnlyList<BtfVarSecInfo> Variables { get; init; } = s_noVariables;

    /// <summary>True for kinds whose <see cref="SizeOrType"/> is a byte size.</summary>
    public bool HasSize => Kind is BtfKind.Int or BtfKind.Struct or BtfKind.Union or BtfKind.Enum
        or BtfKind.Datasec or BtfKind.Float or BtfKind.Enum64;

    /// <summary>True for kinds whose <see cref="SizeOrType"/> refers to another type.</summary>
    public bool HasTypeRef => Kind is BtfKind.Ptr or BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const
        or BtfKind.Restrict or BtfKind.Func or BtfKind.FuncProto or BtfKind.Var or BtfKind.DeclTag or BtfKind.TypeTag;

    /// <inheritdoc />
    public override string ToString() => $"[{Id}] {Kind.ToString().ToUpperInvariant()} '{Name}'";
}

/// <summary>Reads BTF's lists as the arrays the parser makes them.</summary>
internal static class BtfLists
{
    // A foreach over IReadOnlyList<struct> goes through the framework's array enumerator (SZArrayHelper), generic code
    // over BTF's structs that RyuJIT compiles at a process's first object (docs/perf.md, "Cold start"); a span does not.
    internal static ReadOnlySpan<T> Items<T>(IReadOnlyList<T> list) => list as T[] ?? [.. list];
}
